"""Integration-test harness: real Prosody servers, slixmpp clients, Portcullis.

Modules: addresses (fixed loopback layout), procs (child processes, bounded waits),
pki (test PKI), prosody (ProsodyServer), clients (Session, XmppClient), topology
(Topology, Federation, start_portcullis, write_portcullis_config), testing (run_test).
See test/integration/README.md.
"""
