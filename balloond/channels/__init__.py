"""Guest agent channels on the host: the unix-socket hub (virtio-serial through QEMU) and
the xenstore reader. Both turn untrusted lines into `GuestReport`s via `balloond.reports`."""

from balloond.channels.hub import AgentHub, HubSettings
from balloond.channels.xenstore import XenstoreReader, parse_xenstore_ls

__all__ = ["AgentHub", "HubSettings", "XenstoreReader", "parse_xenstore_ls"]
