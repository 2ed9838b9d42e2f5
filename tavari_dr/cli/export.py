"""`tavari-dr export account|tables`: data exports (tavari_dr.export)."""

from __future__ import annotations

import contextlib
import json
import uuid
from pathlib import Path

import click

from tavari_dr.cli.common import aws_command
from tavari_dr.core import s3sink
from tavari_dr.core.config import DEFAULT_DATASETS


@click.group("export")
def group() -> None:
    """Data exports: one account (GDPR/CCPA ZIP) or whole tables (CSV)."""


@aws_command(group, "account", "Export every row of one user's data as a ZIP of JSON Lines."
                               "\n\n\b\nExamples:"
                               "\n  tavari-dr export account --user-id "
                               "6f1c1a52-8d5e-4f3c-9a0b-3c2d1e0f9a8b --database-url "
                               "postgresql://localhost/postgres --out user.zip", env_required=False,
             env_help="Take the datasets from this environment's data_export.datasets (default: the built-in "
                      "Tavari datasets).")
@click.option("--user-id", required=True, help="The Supabase auth user ID (a UUID).")
@click.option("--database-url", required=True, envvar="TAVARI_DATABASE_URL")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.option("--force", is_flag=True, help="Overwrite an existing file.")
def account(config, target, user_id, database_url, out, force):
    try:
        uuid.UUID(user_id)
    except ValueError:
        raise click.UsageError(f"--user-id {user_id!r} is not a UUID") from None
    if out.exists() and not force:
        raise click.UsageError(f"{out} exists; pass --force to overwrite it")
    from tavari_dr.export import account as export_lib

    datasets = config.data_export.datasets if config else DEFAULT_DATASETS
    with open(out, "wb") as handle:
        metadata = export_lib.export_account(database_url, user_id, handle, datasets=datasets)
    rows = sum(f.get("rows", 0) for f in metadata["files"].values())
    click.echo(f"wrote {out}: {len(metadata['business_ids'])} business(es), {rows} rows in "
               f"{len(metadata['files'])} files")


@aws_command(group, "tables", "COPY tables to CSV (header, one file per table) plus manifest.json."
                              "\n\n\b\nExamples:"
                              "\n  tavari-dr export tables --tables "
                              "public.messages,public.invoices --database-url "
                              "postgresql://localhost/postgres --out tables/",
             env_required=False)
@click.option("--tables", default=None, help="Comma-separated schema.table names (default: the Tavari tables).")
@click.option("--database-url", required=True, envvar="TAVARI_DATABASE_URL")
@click.option("--out", required=True, help="A directory, or s3://bucket/prefix.")
@click.option("--force", is_flag=True, help="Write into a directory that already holds files (overwriting them).")
def tables(config, target, tables, database_url, out, force):
    from tavari_dr.export import account as export_lib

    names = [t.strip() for t in tables.split(",")] if tables else list(export_lib.DEFAULT_TABLES)
    if out.startswith("s3://"):
        bucket, _, prefix = out[5:].partition("/")
        s3 = target.client("s3")

        @contextlib.contextmanager
        def write(name):
            sink = s3sink.MultipartSink(s3, bucket, f"{prefix.rstrip('/')}/{name}".lstrip("/"), lock={},
                                        content_type="text/csv")
            try:
                yield sink
            except BaseException:
                sink.abort()
                raise
            sink.close()

        manifest = export_lib.export_tables(database_url, names, write)
        s3.put_object(Bucket=bucket, Key=f"{prefix.rstrip('/')}/manifest.json".lstrip("/"),
                      Body=json.dumps(manifest, indent=1).encode())
    else:
        directory = Path(out)
        if directory.exists() and not directory.is_dir():
            raise click.UsageError(f"--out {directory}: a file, not a directory")
        # Another export's files (or anything else) are never overwritten unasked.
        if directory.is_dir() and any(directory.iterdir()) and not force:
            raise click.UsageError(f"--out {directory} is not empty; pass --force to overwrite its files, or "
                                   "name an empty or new directory")
        directory.mkdir(parents=True, exist_ok=True)
        # export_tables enters (and so closes) each file it is handed.
        manifest = export_lib.export_tables(database_url, names,
                                            lambda name: open(directory / name, "wb"))  # noqa: SIM115
        (directory / "manifest.json").write_text(json.dumps(manifest, indent=1))
    for table, info in manifest["tables"].items():
        click.echo(f"  {table:<28} {info['rows']:>10} rows  {info['file']}")
