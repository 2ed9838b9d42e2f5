"""The local disaster-recovery drill (`tavari-dr drill --local`) and what it runs on: the local
deployer, the AWS emulator, the throwaway PostgreSQL cluster, the Supabase stand-ins and demo data."""
