"""A partner's evidence pack: the partner page's figures as a zip of an HTML report and CSVs.

    from app.evidence import build_pack
    zipped = build_pack(log, "crm-records", start, end, secrets=config_secrets("deliverydash.toml"))

`figures` reads the partner page's queries, `charts` draws them, `html`
renders the report, `scrub` keeps secrets and customer ids out and `pack`
puts it together (docs/evidence.md).
"""

from app.evidence.pack import EvidenceError, build_pack, folder_name
from app.evidence.scrub import config_secrets, dashboard_secrets, live_secrets

__all__ = [
    "EvidenceError",
    "build_pack",
    "config_secrets",
    "dashboard_secrets",
    "folder_name",
    "live_secrets",
]
