#!/usr/bin/env python3
"""lockserver.py with ONE planted bug, for the grader to catch.

The bug: a grant is no longer one etcd transaction. try_grant first reads
whether the lock is free and whether anybody is queued, then writes the lock
with a plain put. Between the read and the write another lock server (or
another request to this one) can read "free" too, and both write: two
clients hold the lock at once, with two fencing tokens. Everything else —
leases, tokens, release, renew, the queue — is lockserver.py's.

`locksim grade --lockserver-cmd "python3 examples/python/lockserver_buggy.py
--listen {listen} --etcd {etcd} --name {name}"` must report the lock history
violated (a double grant) in the contention scenario.
"""

import json

import lockserver
from lockserver import INFO, LOCKS, WAITERS, b64, delete, get, prefix_end, put


class CheckThenSetLocks(lockserver.Locks):
    def try_grant(self, rid, lease, ttl, token_hash, owner, waiter=None):
        queue = WAITERS + rid + "#/"
        # 1. check: is the lock free, and are we first in the queue?
        r = self.etcd.read([get(LOCKS + rid), get(queue, range_end=b64(prefix_end(queue)), sort_target="CREATE", sort_order="ASCEND", limit="1")])
        rev = int(r["header"]["revision"])
        held = r["responses"][0]["response_range"].get("kvs", [])
        first = r["responses"][1]["response_range"].get("kvs", [])
        if held:
            return None, rev
        if first and (waiter is None or lockserver.unb64(first[0]["key"]) != waiter[0]):
            return None, rev
        # 2. then set: THE BUG — nothing guards this write; the check above may be stale.
        info = json.dumps({"ownerId": owner, "ttl": ttl})
        ops = [put(LOCKS + rid, token_hash, lease), put(INFO + rid, info, lease)]
        if waiter is not None:
            ops.append(delete(waiter[0]))
        r = self.etcd.txn([], ops)
        return int(r["header"]["revision"]), int(r["header"]["revision"])


if __name__ == "__main__":
    lockserver.main(locks=CheckThenSetLocks)
