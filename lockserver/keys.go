package lockserver

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// The key layout in etcd: lock servers keep no lock state, everything lives
// here. The server writes these keys and the Observer reads them.
//
//	/locks/<resourceId>                      hex SHA-256 of the lockToken, on the lock's lease
//	/lockinfo/<resourceId>                   lock record JSON, same lease, always written with the lock key
//	/waiters/<resourceId>#/<lease>.<random>  a blocked acquire's place in the queue, on the waiter's lease
//	/lockrel/<resourceId>                    release receipt: hex SHA-256 of the released token, on a receipt lease
//
// resourceIds cannot contain '#', so no waiter prefix is a prefix of another's.
const (
	// LockPrefix holds the lock keys. A lock key's CreateRevision is the
	// grant's fencing token.
	LockPrefix = "/locks/"
	// InfoPrefix holds each lock's record (DecodeRecord), created in the
	// grant's txn and deleted with the lock. A watcher of this prefix sees a
	// grant as a put that creates the key (its CreateRevision is the fencing
	// token), a renew as a put that rewrites it (on another lease), and a
	// release or expiry as a delete.
	InfoPrefix = "/lockinfo/"
	// WaiterPrefix holds the queue of blocked acquires.
	WaiterPrefix = "/waiters/"
	// ReleasedPrefix holds release receipts: a successful release writes
	// ReleasedPrefix+resourceId = HashToken(released token), in the same txn
	// that deletes the lock, so that a watcher tells a release from a lease
	// expiry. A receipt lives on a receipt lease of its lock server and
	// leaves etcd within Config.ReceiptTTL (or at the resource's next grant).
	ReleasedPrefix = "/lockrel/"
	// WatchEnd ends the key range [InfoPrefix, WatchEnd), which holds every
	// lock record and every release receipt, and nothing else.
	WatchEnd = "/lockrel0"
)

func lockKey(id string) string       { return LockPrefix + id }
func infoKey(id string) string       { return InfoPrefix + id }
func releasedKey(id string) string   { return ReleasedPrefix + id }
func waitersPrefix(id string) string { return WaiterPrefix + id + "#/" }

// waiterKey names one registration in the queue: the lease id (which the
// pool reuses) plus 64 random bits, so that a name is never used twice. A
// reused name would let a waiter that read "my predecessor is K" watch a
// newer, later-queued K instead, and the two would wait on each other.
func waiterKey(id string, lease clientv3.LeaseID) string {
	var b [8]byte
	_, _ = io.ReadFull(rand.Reader, b[:]) // crypto/rand never fails on Linux
	return waitersPrefix(id) + strconv.FormatInt(int64(lease), 16) + "." + hex.EncodeToString(b[:])
}

// lockInfo is the lock record stored next to a lock. TTL is the granted TTL
// of the lease the lock is on now (a renew rewrites it).
type lockInfo struct {
	OwnerID    string    `json:"ownerId"`
	TTL        float64   `json:"ttl"`
	AcquiredAt time.Time `json:"acquiredAt"`
}

func encodeInfo(i lockInfo) string {
	b, _ := json.Marshal(i) // cannot fail: plain struct
	return string(b)
}

// Record is a lock's record as stored in etcd under InfoPrefix.
type Record struct {
	OwnerID    string
	TTL        time.Duration // the granted TTL of the lease the lock is on
	AcquiredAt time.Time
}

// DecodeRecord parses the value of a key under InfoPrefix.
func DecodeRecord(value []byte) (Record, error) {
	var info lockInfo
	if err := json.Unmarshal(value, &info); err != nil {
		return Record{}, fmt.Errorf("lockserver: bad lock record: %w", err)
	}
	return Record{OwnerID: info.OwnerID, TTL: time.Duration(info.TTL * float64(time.Second)), AcquiredAt: info.AcquiredAt}, nil
}
