"""A Tavari-like database that looks like Supabase, for tests, benchmarks and the local drill.

``create_supabase_like(url)`` applies the platform stand-ins, a small auth/storage stand-in and
the Tavari demo schema; ``seed(url, ...)`` fills it deterministically, with unicode, large text
and bytea rows so a backup has something real to carry.
"""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta
from importlib import resources

# The drill's own stand-ins, then the platform roles the database restore applies to a plain target.
SQL_FOLDERS = (resources.files("tavari_dr.drill") / "sql", resources.files("tavari_dr.database") / "sql")
TABLES = ("businesses", "call_sessions", "messages", "usage", "invoices", "support_tickets")


def sql(name: str) -> str:
    return next(folder / name for folder in SQL_FOLDERS if (folder / name).is_file()).read_text()


def create_supabase_like(url: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        for name in ("supabase_platform.sql", "supabase_auth_storage.sql", "tavari_demo.sql"):
            conn.execute(sql(name))


def seed(url: str, *, businesses: int = 5, calls: int = 20, messages: int = 50, tickets: int = 3,
         large_text_bytes: int = 200_000, seed_value: int = 42) -> dict[str, int]:
    """Insert rows per business; returns rows inserted per table (auth.users included)."""
    import psycopg

    rng = random.Random(seed_value)  # noqa: S311 - reproducible demo data, not secrets
    start = datetime(2026, 1, 1, tzinfo=UTC)
    counts = {"auth.users": 0, **{t: 0 for t in TABLES}, "storage.objects": 0}
    with psycopg.connect(url) as conn, conn.cursor() as cur:
        cur.execute("INSERT INTO storage.buckets (id, name) VALUES ('invoices', 'invoices') ON CONFLICT DO NOTHING")
        for b in range(businesses):
            user_id = uuid.UUID(int=rng.getrandbits(128), version=4)
            cur.execute("INSERT INTO auth.users (id, email, raw_user_meta_data) VALUES (%s, %s, %s)",
                        (user_id, f"owner{b}-{seed_value}@tavari.example",
                         psycopg.types.json.Jsonb({"name": f"Zoë Ñúñez {b}", "plan": "pro"})))
            counts["auth.users"] += 1
            business_id = uuid.UUID(int=rng.getrandbits(128), version=4)
            cur.execute("INSERT INTO public.businesses (id, owner_id, name, settings) VALUES (%s, %s, %s, %s)",
                        (business_id, user_id, f"Café Łódź #{b} 🍕",
                         psycopg.types.json.Jsonb({"hours": {"mon": "9-17"}, "locale": "pl-PL"})))
            counts["businesses"] += 1
            with cur.copy("COPY public.call_sessions (business_id, caller, status, started_at, duration_seconds, "
                          "transcript) FROM STDIN") as copy:
                for c in range(calls):
                    copy.write_row((business_id, f"+4860{rng.randrange(10**7):07d}",
                                    rng.choice(["answered", "missed", "voicemail"]),
                                    start + timedelta(minutes=rng.randrange(500_000)), rng.randrange(3600),
                                    None if c % 7 == 0 else f"Transcript {c}: dzień dobry — こんにちは"))
            counts["call_sessions"] += calls
            with cur.copy("COPY public.messages (business_id, direction, body, sent_at) FROM STDIN") as copy:
                for m in range(messages):
                    copy.write_row((business_id, rng.choice(["in", "out"]), f"Message {m} ✓ «{rng.random():.6f}»",
                                    start + timedelta(seconds=rng.randrange(30_000_000))))
            counts["messages"] += messages
            for month in range(1, 4):
                cur.execute("INSERT INTO public.usage VALUES (%s, %s, %s)",
                            (business_id, start.date().replace(month=month), round(rng.uniform(0, 9999), 2)))
                cur.execute("INSERT INTO public.invoices (business_id, number, amount, pdf_key, issued_at) "
                            "VALUES (%s, %s, %s, %s, %s)",
                            (business_id, f"INV-{seed_value}-{b}-{month}", round(rng.uniform(10, 5000), 2),
                             f"invoices/{business_id}/{month}.pdf", start + timedelta(days=31 * month)))
                cur.execute("INSERT INTO storage.objects (bucket_id, name, owner, metadata) VALUES "
                            "('invoices', %s, %s, %s)", (f"{business_id}/{month}.pdf", user_id,
                                                         psycopg.types.json.Jsonb({"size": 1234})))
            counts["usage"] += 3
            counts["invoices"] += 3
            counts["storage.objects"] += 3
            for t in range(tickets):
                large = "Lorem ipsum łóżko " * (large_text_bytes // 18) if t == 0 else f"Ticket {t}"
                cur.execute("INSERT INTO public.support_tickets (business_id, subject, body, attachment) "
                            "VALUES (%s, %s, %s, %s)",
                            (business_id, f"Help #{t}", large, rng.randbytes(64 * 1024) if t == 1 else None))
            counts["support_tickets"] += tickets
    return counts
