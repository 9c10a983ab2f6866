"""acryl-datahub reads its telemetry switch when first imported: keep these tests from phoning home."""

from __future__ import annotations

import os

os.environ["DATAHUB_TELEMETRY_ENABLED"] = "false"
