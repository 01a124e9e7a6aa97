package lockserver

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"io"
)

// tokenRandomBytes is the number of random bytes of a lockToken (160 bits).
const tokenRandomBytes = 20

// newToken returns a lockToken: 160 random bits from crypto/rand, in hex.
//
// A token names one grant and nothing else. It is not tied to a lease: a
// renew moves the lock to another lease and the token stays valid. Etcd
// stores only its hash (the lock key's value), and every check of a token is
// a compare of that hash in the same txn as the change it guards. Hashes of
// 160-bit random tokens do not collide, so a token is accepted only for the
// lock it was granted for, and only while that grant lasts: a later grant of
// the same resource stores another token's hash.
func newToken() (string, error) {
	b := make([]byte, tokenRandomBytes)
	if _, err := io.ReadFull(rand.Reader, b); err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}

// validToken reports whether tok has the form newToken produces. Any other
// token holds no lock, which the server answers without asking etcd.
func validToken(tok string) bool {
	if len(tok) != 2*tokenRandomBytes {
		return false
	}
	_, err := hex.DecodeString(tok)
	return err == nil
}

// hashToken is what etcd stores instead of the token.
func hashToken(tok string) string {
	sum := sha256.Sum256([]byte(tok))
	return hex.EncodeToString(sum[:])
}

// HashToken is what etcd stores of a lock token (hex SHA-256): the value of
// its lock key and of its release receipt.
func HashToken(tok string) string { return hashToken(tok) }
