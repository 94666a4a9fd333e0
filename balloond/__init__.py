"""balloond: a policy-driven memory balancer for Xen and KVM virtual machines.

Sizes are integers of bytes everywhere inside the package; only the edges convert
(libvirt speaks KiB, `xl` MiB, Prometheus bytes).
"""

__version__ = "0.1.0"
