"""Data curation and adapter training (installed as `tuneloop.train`)."""

import logging

# bitsandbytes (imported by PEFT when installed) warns on every import that an optional CPU
# kernel package is missing; its 4-bit CPU path works without it.
logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)
