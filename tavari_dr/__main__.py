from tavari_dr.cli import run

run()
