"""Traffic scenarios shared by the interop tests (direct baseline and through
Portcullis): the same checks, so the two topologies are compared like for like."""

from .testing import check


def chat_both_ways(ctx, fed, tag):
    """alice@a.test -> bob@b.test and back; no message errors on either side."""
    alice_jid, bob_jid = fed.jid("a", "alice"), fed.jid("b", "bob")
    with fed.session("a", "alice") as alice, fed.session("b", "bob") as bob:
        alice.send(bob_jid, "hello bob " + tag)
        bob.expect_message(alice_jid, "hello bob " + tag, timeout=20)
        ctx.step("%s: chat a.test -> b.test delivered" % tag)
        bob.send(alice_jid, "hello alice " + tag)
        alice.expect_message(bob_jid, "hello alice " + tag, timeout=20)
        ctx.step("%s: chat b.test -> a.test delivered" % tag)
        check(not alice.errors() and not bob.errors(),
              "%s: unexpected message errors %r" % (tag, alice.errors() + bob.errors()))


def muc_both_ways(ctx, fed):
    """alice@a.test joins room@conference.b.test over S2S; groupchat both ways
    (the room reflects each message to its sender too)."""
    room = fed.room("b")
    with fed.session("a", "alice") as alice, fed.session("b", "bob") as bob:
        bob.join_room(room, "bob")
        alice.join_room(room, "alice", timeout=20)
        ctx.step("muc: alice@a.test joined %s over s2s" % room)
        alice.send_groupchat(room, "hi room from alice")
        bob.expect_groupchat(room, "alice", "hi room from alice", timeout=20)
        alice.expect_groupchat(room, "alice", "hi room from alice", timeout=20)
        bob.send_groupchat(room, "hi room from bob")
        alice.expect_groupchat(room, "bob", "hi room from bob", timeout=20)
        ctx.step("muc: groupchat delivered both ways")
