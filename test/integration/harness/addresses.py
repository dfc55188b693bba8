"""Fixed loopback addresses and names of the integration topology.

Every listener gets its own 127.x address because Prosody always dials port 5269
(the port cannot be set through the hosts file, real-peers.md pitfall 3).
"""

A_DOMAIN = "a.test"            # low side XMPP server
B_DOMAIN = "b.test"            # high side XMPP server
A_MUC = "conference.a.test"
B_MUC = "conference.b.test"

A_IP = "127.0.0.2"             # Prosody a.test: c2s 5222, s2s 5269
B_IP = "127.0.0.3"             # Prosody b.test: c2s 5222, s2s 5269
EDGE_LOW_IP = "127.0.0.4"      # Portcullis edge(low): fronts b.test toward a.test
IRC_IP = "127.0.0.5"           # ngIRCd (irc.test), port 6667
EDGE_HIGH_IP = "127.0.0.6"     # Portcullis edge(high): fronts a.test toward b.test

C2S_PORT = 5222
S2S_PORT = 5269
IRC_PORT = 6667

PYTHON = "/usr/bin/python3"    # the interpreter that has slixmpp (pitfall 8)
