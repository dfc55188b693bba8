"""Fixed loopback addresses and names of the integration topology.

Every listener gets its own 127.x address because Prosody always dials port 5269
(the port cannot be set through the hosts file, real-peers.md pitfall 3).
"""

import os

# The /24 on loopback that one run uses. Several runs (developers, CI) can share a
# machine by choosing different nets, e.g. PORTCULLIS_TEST_NET=127.0.7.
NET = os.environ.get("PORTCULLIS_TEST_NET", "127.0.0")

A_DOMAIN = "a.test"            # low side XMPP server
B_DOMAIN = "b.test"            # high side XMPP server
A_MUC = "conference.a.test"
B_MUC = "conference.b.test"
A_ROOMS = "rooms.low.test"     # MUC service hosted by edge(low) (FMUC node of the low side)
B_ROOMS = "rooms.high.test"    # MUC service hosted by edge(high)
PSEUDONYMS = "anon.boundary.test"   # domain of the boundary's pseudonyms
NODE_A_ROOMS = "rooms.site-a.test"  # MUC service of standalone FMUC node A (low side, site A)
NODE_B_ROOMS = "rooms.site-b.test"  # MUC service of standalone FMUC node B (high side, site B)

A_IP = NET + ".2"             # Prosody a.test: c2s 5222, s2s 5269
B_IP = NET + ".3"             # Prosody b.test: c2s 5222, s2s 5269
EDGE_LOW_IP = NET + ".4"      # Portcullis edge(low): fronts b.test toward a.test
IRC_IP = NET + ".5"           # ngIRCd (irc.test), port 6667
EDGE_HIGH_IP = NET + ".6"     # Portcullis edge(high): fronts a.test toward b.test
NODE_A_IP = NET + ".8"        # standalone FMUC node A (portcullisd <node>): rooms.site-a.test
NODE_B_IP = NET + ".9"        # standalone FMUC node B (portcullisd <node>): rooms.site-b.test
IRC2_IP = NET + ".10"         # second ngIRCd (irc-b.test), linked to the one on IRC_IP

C2S_PORT = 5222
S2S_PORT = 5269
IRC_PORT = 6667

PYTHON = "/usr/bin/python3"    # the interpreter that has slixmpp (pitfall 8)
