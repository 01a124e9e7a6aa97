package lockserver

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"strconv"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// tokenRandomBytes is the number of random bytes of a lockToken (160 bits).
const tokenRandomBytes = 20

// newToken returns "<lease id hex>.<random hex>": the lease id lets renew and
// release find the lease without a read; the random part makes it unguessable.
func newToken(lease clientv3.LeaseID) (string, error) {
	b := make([]byte, tokenRandomBytes)
	if _, err := io.ReadFull(rand.Reader, b); err != nil {
		return "", err
	}
	return strconv.FormatInt(int64(lease), 16) + "." + hex.EncodeToString(b), nil
}

// parseToken returns the lease id embedded in a token, or false when the
// token is not of the form newToken produces.
func parseToken(tok string) (clientv3.LeaseID, bool) {
	lease, random, ok := strings.Cut(tok, ".")
	if !ok || len(random) != 2*tokenRandomBytes {
		return 0, false
	}
	if _, err := hex.DecodeString(random); err != nil {
		return 0, false
	}
	id, err := strconv.ParseInt(lease, 16, 64)
	if err != nil || id <= 0 {
		return 0, false
	}
	return clientv3.LeaseID(id), true
}

// hashToken is what etcd stores instead of the token.
func hashToken(tok string) string {
	sum := sha256.Sum256([]byte(tok))
	return hex.EncodeToString(sum[:])
}

// HashToken is what etcd stores of a lock token (hex SHA-256): the value of
// its lock key and of its release receipt.
func HashToken(tok string) string { return hashToken(tok) }
