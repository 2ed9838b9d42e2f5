"""What a dump does not hold: the Supabase project's own configuration, read through the Management API,
snapshotted beside each nightly dump and written back with `tavari-dr supabase restore-config`.

Each section is one resource of the Management API, read with its GET and written back with its update
call, as the API's OpenAPI document specifies them (the tests' fake server enforces that document:
tests/data/supabase_management_api/SOURCE.md names its source and commit):

    section              read                                   write back
    auth                 GET   /v1/projects/{ref}/config/auth           PATCH same path (changed keys)
    postgres             GET   /v1/projects/{ref}/config/database/postgres  PUT same path: REPLACES every override,
                                                                            so the full set is sent, and
                                                                            restart_database said explicitly
    pooler               GET   /v1/projects/{ref}/config/database/pooler    PATCH same path (default_pool_size,
                                                                            pool_mode of the PRIMARY)
    network_restrictions GET   /v1/projects/{ref}/network-restrictions  POST .../network-restrictions/apply
                                                                            (dbAllowedCidrs, dbAllowedCidrsV6)
    postgrest            GET   /v1/projects/{ref}/postgrest             PATCH same path (db_schema, max_rows,
                                                                            db_extra_search_path, db_pool)
    storage              GET   /v1/projects/{ref}/config/storage        PATCH same path (fileSizeLimit, features,
                                                                            external)
    ssl_enforcement      GET   /v1/projects/{ref}/ssl-enforcement       PUT same path {"requestedConfig": ...}

A read gives keys its update refuses (the auth config's read-only counters and flags, the pooler's
connection strings, storage's capabilities): each section keeps only what its update's request schema
takes (``writable``, or every key read but ``read_only``), and the contract tests check those lists
against the document.

Never snapshotted in plaintext (EXCLUDED): secrets. The auth config's provider secrets, SMTP password, SMS
provider tokens and keys, hook secrets and CAPTCHA secret (any key named like a secret, SECRET_KEY_RE), its
test OTPs (phone numbers), and PostgREST's ``jwt_secret``; likewise the project's API keys, JWT signing
keys and Edge Function secrets, which are never read at all. Their names are recorded, so a restore says
what to set by hand (from the password manager or `tavari-dr secrets pull`). Nor sizing and DNS: the
disk/compute add-ons, custom domains and vanity subdomains are billing and DNS decisions, re-made when a
new project is created (docs/runbooks/complete-system-failure.md).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from tavari_dr.core.supabase_api import SupabaseApiError, supabase_request

FORMAT = "tavari-supabase-config/1"
ARTIFACT = "supabase_config.json"  # beside the dump, pinned and signed by its manifest
# Secret-shaped key names: *_secret(s), *_pass(word), *_token (but not *_token_* settings such as
# refresh_token_rotation_enabled), *_api_key, *_access_key, *_private_key, and the test OTPs.
SECRET_KEY_RE = re.compile(r"(secret|secrets|_pass|password|_token|api_key|access_key|private_key|_key_id)$"
                           r"|^sms_test_otp")

Request = Callable[..., Any]  # supabase_request's shape: (method, url, token, body=None)


def _without_secrets(values: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    kept = {k: v for k, v in values.items() if not SECRET_KEY_RE.search(k)}
    return kept, sorted(set(values) - set(kept))


def _primary_pooler(answer: Any) -> dict[str, Any]:
    entries = answer if isinstance(answer, list) else [answer]
    primary = next((e for e in entries if isinstance(e, dict) and e.get("database_type", "PRIMARY") == "PRIMARY"),
                   None)
    if primary is None:
        raise SupabaseApiError(f"no PRIMARY entry in the pooler config: {str(answer)[:120]}")
    return primary


class _Unset:
    """A setting the snapshot does not have: a section its update replaces loses it (back to the default)."""

    def __repr__(self) -> str:
        return "UNSET"


UNSET: Any = _Unset()


@dataclass(frozen=True)
class Section:
    name: str
    path: str  # under /v1/projects/{ref}
    method: str  # the specified update method
    write_path: str | None = None  # when the update has its own path
    writable: tuple[str, ...] | None = None  # the keys the update takes (None: every key read but read_only)
    read_only: tuple[str, ...] = ()  # keys the read gives and the update refuses
    replaces: bool = False  # the update replaces the section: the full set is sent, a key not sent is unset
    not_nullable: tuple[str, ...] = ()  # keys the read may give as null that the update cannot set to null
    restart_key: str | None = None  # the update's switch to restart the database, always sent explicitly
    read: Callable[[Any], Any] = lambda answer: answer  # the API's answer -> the section's values
    body: Callable[[dict[str, Any], dict[str, Any]], Any] = lambda changed, _values: changed

    def keeps(self, key: str) -> bool:
        if self.writable is not None:
            return key in self.writable
        return key not in self.read_only

    def values(self, answer: Any) -> tuple[dict[str, Any], list[str]]:
        read = self.read(answer)
        if not isinstance(read, dict):
            raise SupabaseApiError(f"{self.name}: unexpected answer {str(answer)[:120]}")
        kept, excluded = _without_secrets(read)
        return {k: v for k, v in kept.items() if self.keeps(k)}, excluded


SECTIONS = (
    Section("auth", "/config/auth", "PATCH",
            read_only=("custom_oauth_max_providers", "nimbus_oauth_email_optional", "saml_allow_encrypted_assertions")),
    # PUT replaces every override: the snapshot's full set goes, and a restart only when asked for.
    Section("postgres", "/config/database/postgres", "PUT", replaces=True, restart_key="restart_database",
            body=lambda _changed, values: dict(values)),
    Section("pooler", "/config/database/pooler", "PATCH", writable=("default_pool_size", "pool_mode"),
            read=_primary_pooler),
    Section("network_restrictions", "/network-restrictions", "POST", write_path="/network-restrictions/apply",
            writable=("dbAllowedCidrs", "dbAllowedCidrsV6"), read=lambda answer: (answer or {}).get("config"),
            # The apply call replaces the lists: send both as the snapshot has them.
            replaces=True, body=lambda _changed, values: values),
    Section("postgrest", "/postgrest", "PATCH", writable=("db_schema", "max_rows", "db_extra_search_path", "db_pool"),
            not_nullable=("db_pool",)),  # null is "sized by the compute", which the update cannot ask for
    Section("storage", "/config/storage", "PATCH", writable=("fileSizeLimit", "features", "external")),
    Section("ssl_enforcement", "/ssl-enforcement", "PUT", read=lambda answer: (answer or {}).get("currentConfig"),
            replaces=True, body=lambda _changed, values: {"requestedConfig": values}),
)
BY_NAME = {s.name: s for s in SECTIONS}


def _url(api_url: str, ref: str, path: str) -> str:
    return f"{api_url.rstrip('/')}/v1/projects/{ref}{path}"


def snapshot(api_url: str, project_ref: str, token: str, *, request: Request = supabase_request,
             now: datetime | None = None) -> dict[str, Any]:
    """Read every section; a section the API would not give is named in ``unavailable`` (the rest is
    still kept). Secret values never enter the document, only their names (``excluded``)."""
    sections: dict[str, Any] = {}
    unavailable: dict[str, str] = {}
    for section in SECTIONS:
        try:
            values, excluded = section.values(request("GET", _url(api_url, project_ref, section.path), token))
        except SupabaseApiError as err:
            if "token was refused" in str(err):
                raise  # nothing else will be readable either
            unavailable[section.name] = str(err)
            continue
        sections[section.name] = {"values": values, "excluded": excluded}
    return {"format": FORMAT, "project_ref": project_ref,
            "taken_at": (now or datetime.now(UTC)).isoformat(timespec="seconds"), "sections": sections,
            "unavailable": unavailable}


def encode(document: dict[str, Any]) -> bytes:
    return json.dumps(document, indent=1, sort_keys=True).encode()


def decode(body: bytes) -> dict[str, Any]:
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise ValueError("the Supabase configuration snapshot is not JSON") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT or not isinstance(
            document.get("sections"), dict):
        raise ValueError(f"not a {FORMAT} snapshot")
    return document


@dataclass(frozen=True)
class Change:
    section: str
    key: str
    current: Any
    wanted: Any  # UNSET: the snapshot has no such override, and the section's update removes it

    def line(self) -> str:
        wanted = "(not set: back to the default)" if self.wanted is UNSET else json.dumps(self.wanted)
        return f"{self.section}.{self.key}: {json.dumps(self.current)} -> {wanted}"

    @property
    def writable(self) -> bool:
        return not (self.wanted is None and self.key in BY_NAME[self.section].not_nullable)


def diff(document: dict[str, Any], api_url: str, project_ref: str, token: str, *,
         request: Request = supabase_request) -> tuple[list[Change], dict[str, dict[str, Any]]]:
    """What differs between the snapshot and the project now: the changes, and each section's current
    values (to build the update bodies from). A section whose update replaces it also lists what the
    project has and the snapshot does not: the update will unset it."""
    changes, current_by_section = [], {}
    for name, saved in sorted(document["sections"].items()):
        section = BY_NAME.get(name)
        if section is None:
            raise ValueError(f"the snapshot has a section {name!r} this tool does not know")
        current, _ = section.values(request("GET", _url(api_url, project_ref, section.path), token))
        current_by_section[name] = current
        wanted_values = {k: v for k, v in saved["values"].items() if section.keeps(k)}  # older snapshots: all read
        for key, wanted in sorted(wanted_values.items()):
            if current.get(key) != wanted:
                changes.append(Change(name, key, current.get(key), wanted))
        if section.replaces:
            changes += [Change(name, key, current[key], UNSET) for key in sorted(set(current) - set(wanted_values))]
    return changes, current_by_section


def unwritable(changes: list[Change]) -> list[Change]:
    """The changes the API's update cannot make (a null it does not take): left for the operator."""
    return [c for c in changes if not c.writable]


def apply(document: dict[str, Any], changes: list[Change], api_url: str, project_ref: str, token: str, *,
          restart_database: bool = False, request: Request = supabase_request,
          log: Callable[[str], None] = lambda _m: None) -> list[str]:
    """One specified update call per section that differs; returns the sections written. A section whose
    update restarts the database says so explicitly (``restart_database``; default: no restart)."""
    written = []
    for name in sorted({c.section for c in changes if c.writable}):
        section = BY_NAME[name]
        saved = {k: v for k, v in document["sections"][name]["values"].items() if section.keeps(k)}
        changed = {c.key: c.wanted for c in changes if c.section == name and c.writable}
        body = section.body(changed, saved)
        if section.restart_key:
            body[section.restart_key] = restart_database
        path = section.write_path or section.path
        request(section.method, _url(api_url, project_ref, path), token, body)
        restart = ("" if not section.restart_key else
                   "; the database restarts now" if restart_database else "; no restart: settings that need one "
                   "take effect at the database's next restart")
        log(f"{name}: {section.method} {path} ({len(changed)} setting(s){restart})")
        written.append(name)
    return written


def excluded_names(document: dict[str, Any]) -> list[str]:
    """Every secret the snapshot left out, as section.key: what a restore leaves to be set by hand."""
    return [f"{name}.{key}" for name, saved in sorted(document["sections"].items())
            for key in saved.get("excluded", [])]
