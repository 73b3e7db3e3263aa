"""The topology's `certificates` section: how every LB node treats the certificates its TLS
checks see (rendered into each node config's `certificates:`; agent/checks/cert_policy.py).

    certificates:
      warn_days: 30        # below: the agent warns and status says "expiring" (still healthy)
      withdraw_days: 6     # below a node's staggered threshold: its check fails, VIPs withdrawn
      tls_checks: true     # a TLS check of each VIP whose backends' certificate the LB can check
      ca_file: /etc/anycast-ctl/ca.pem   # what those checks trust (absent: the system's store)

Each node's slot among the nodes sharing a certificate is the rendering's (render/node_config
`certificate_slots`), so no two files can disagree on it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field, field_validator, model_validator

from anycast_ctl.config.common import StrictModel

Days = Annotated[float, Field(ge=0, le=3650)]


class CertificateSettings(StrictModel):
    warn_days: Days = 30
    withdraw_days: Days = 0  # 0: never withdraw for nearing expiry, only once expired
    tls_checks: bool = False
    ca_file: Path | None = None

    @field_validator("ca_file")
    @classmethod
    def _absolute(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_absolute():
            raise ValueError(f"{value}: the CA file's path on the LB node must be absolute")
        return value

    @model_validator(mode="after")
    def _warned_first(self) -> CertificateSettings:
        if self.withdraw_days > self.warn_days:
            raise ValueError(
                f"withdraw_days ({self.withdraw_days:g}) exceeds warn_days ({self.warn_days:g}):"
                " a node would withdraw before anyone was warned"
            )
        return self
