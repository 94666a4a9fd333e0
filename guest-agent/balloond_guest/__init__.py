"""balloond guest agent: tells the host how much memory this VM really needs.

Standard library only, Python 3.7+: guests are often older than hosts, and a minimal Debian
guest has just python3-minimal plus libpython3-stdlib (json lives in the latter).
"""

VERSION = "0.1.0"
AGENT = "balloond-guest/" + VERSION
PROTOCOL_VERSION = 1
PORT_NAME = "org.balloond.agent.0"
