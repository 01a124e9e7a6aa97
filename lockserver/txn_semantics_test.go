package lockserver

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// TestEtcdTxnSemantics pins the etcd behaviour the hand-over relies on.
func TestEtcdTxnSemantics(t *testing.T) {
	te := startEtcd(t)
	ctx := t.Context()
	first, err := te.cli.Put(ctx, "k", "a")
	require.NoError(t, err)

	t.Run("a delete and a put of one key in one txn are refused", func(t *testing.T) {
		_, err := te.cli.Txn(ctx).Then(clientv3.OpDelete("k"), clientv3.OpPut("k", "b")).Commit()
		assert.ErrorIs(t, err, rpctypes.ErrDuplicateKey)
	})
	t.Run("a put in a nested Then and a delete in its Else are accepted", func(t *testing.T) {
		resp, err := te.cli.Txn(ctx).Then(clientv3.OpTxn(
			[]clientv3.Cmp{clientv3.Compare(clientv3.Value("k"), "=", "a")},
			[]clientv3.Op{clientv3.OpPut("k", "b")},
			[]clientv3.Op{clientv3.OpDelete("k")})).Commit()
		require.NoError(t, err)
		assert.True(t, resp.Responses[0].GetResponseTxn().Succeeded)
	})
	t.Run("a put keeps CreateRevision and moves ModRevision to the txn's revision", func(t *testing.T) {
		resp, err := te.cli.Txn(ctx).Then(clientv3.OpPut("k", "c"), clientv3.OpGet("k")).Commit()
		require.NoError(t, err)
		kv := resp.Responses[1].GetResponseRange().Kvs[0]
		assert.Equal(t, first.Header.Revision, kv.CreateRevision)
		assert.Equal(t, resp.Header.Revision, kv.ModRevision)
	})
}
