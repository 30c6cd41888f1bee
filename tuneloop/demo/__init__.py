"""The bundled demo data set: support-ticket triage, with its data card."""

from pathlib import Path

DEMO_DATA = Path(__file__).with_name("support_triage.jsonl")
DATA_CARD = Path(__file__).with_name("DATA_CARD.md")
