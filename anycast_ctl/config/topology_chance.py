"""The topology's `second_chance` section: whether `render node` turns forwarding on, and how.

second_chance:
  enabled: true        # the default: on wherever the topology has two LB nodes or more
  hop_limit: 1
  overlay_mtu: 1500    # needs 1550-byte frames between the LB nodes (null: the kernel's 1450)
  key: "a shared secret of 16+ bytes"   # heartbeat HMAC; unset: source addresses only
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, Field

from anycast_ctl.config.common import Port, SafeStr, StrictModel
from anycast_ctl.config.node_chance import DEFAULT_HEARTBEAT_PORT, HOP_LIMIT_MAX, heartbeat_key


class TopologyChance(StrictModel):
    enabled: bool = True
    hop_limit: Annotated[int, Field(ge=1, le=HOP_LIMIT_MAX)] = 1
    overlay_mtu: Annotated[int, Field(ge=1280, le=9000)] | None = 1500
    key: Annotated[SafeStr, AfterValidator(heartbeat_key)] | None = None
    heartbeat_port: Port = DEFAULT_HEARTBEAT_PORT
    drain_timeout: Annotated[float, Field(ge=1, le=7 * 86400)] = 3600
