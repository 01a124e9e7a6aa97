package component

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestNameAndParseRoundTrip(t *testing.T) {
	for _, kind := range []string{Etcd, LockServer, Client, Balancer} {
		for i := 1; i <= 12; i++ {
			name := Name(kind, i)
			gotKind, gotIndex, ok := Parse(name)
			require.True(t, ok, name)
			assert.Equal(t, kind, gotKind)
			assert.Equal(t, i, gotIndex)
			assert.Equal(t, kind, KindOf(name))
		}
	}
	assert.Equal(t, "balancer-1", Name(Balancer, 1))
	assert.Equal(t, []string{"etcd-1", "etcd-2", "etcd-3"}, Names(Etcd, 3))
	assert.Equal(t, []string{"balancer"}, Names(Balancer, 1), "the only balancer is named by its kind")
	assert.Equal(t, []string{"balancer-1", "balancer-2"}, Names(Balancer, 2))
	assert.Equal(t, Balancer, KindOf("balancer"))
	kind, index, ok := Parse("balancer")
	assert.True(t, ok)
	assert.Equal(t, Balancer, kind)
	assert.Zero(t, index)
}

func TestParseRejectsNonNames(t *testing.T) {
	for _, s := range []string{"", "etcd", "etcd-0", "etcd-01", "etcd-x", "etcd:leader", "balancer-0", "balancer:master", "zookeeper-1", "client--1"} {
		t.Run(s, func(t *testing.T) {
			_, _, ok := Parse(s)
			assert.False(t, ok)
			assert.Empty(t, KindOf(s))
		})
	}
}

func TestParseTarget(t *testing.T) {
	tests := []struct {
		in      string
		want    Target
		wantErr string
	}{
		{in: "etcd-2", want: Target{Kind: Etcd, Name: "etcd-2", Index: 2}},
		{in: "etcd:leader", want: Target{Kind: Etcd, Role: RoleLeader}},
		{in: "lockserver:any", want: Target{Kind: LockServer, Role: RoleAny}},
		{in: "client:holder", want: Target{Kind: Client, Role: RoleHolder}},
		{in: "balancer", want: Target{Kind: Balancer, Name: "balancer"}},
		{in: "balancer-2", want: Target{Kind: Balancer, Name: "balancer-2", Index: 2}},
		{in: "balancer:master", want: Target{Kind: Balancer, Role: RoleMaster}},
		{in: "balancer:leader", wantErr: `(balancer has the role "master")`},
		{in: "balancer-0", wantErr: "balancer numbers start at 1"},
		{in: "etcd:boss", wantErr: `"etcd:boss" (etcd has the roles "leader", "follower")`},
		{in: "client:leader", wantErr: `(client has the role "holder")`},
		{in: "etcd-0", wantErr: "etcd numbers start at 1"},
		{in: "mongo-1", wantErr: "want etcd-N, etcd:leader"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseTarget(tt.in)
			if tt.wantErr != "" {
				require.ErrorIs(t, err, ErrBadName)
				assert.Contains(t, err.Error(), tt.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
			assert.Equal(t, tt.in, got.String())
		})
	}
}

func TestParseLink(t *testing.T) {
	got, err := ParseLink("lockserver-1 <-> etcd-2")
	require.NoError(t, err)
	assert.Equal(t, []Link{{"lockserver-1", "etcd-2"}, {"etcd-2", "lockserver-1"}}, got)
	assert.Equal(t, "lockserver-1<->etcd-2", FormatLink(got))

	got, err = ParseLink("etcd-1->etcd-3")
	require.NoError(t, err)
	assert.Equal(t, []Link{{"etcd-1", "etcd-3"}}, got)
	assert.Equal(t, "etcd-1->etcd-3", FormatLink(got))

	for _, bad := range []string{"", "etcd-1", "etcd-1->", "->etcd-1", "etcd-1->etcd-1", "a<->a"} {
		_, err := ParseLink(bad)
		assert.ErrorIs(t, err, ErrBadName, bad)
	}
}

func TestConnected(t *testing.T) {
	assert.True(t, Connected(Etcd, LockServer))
	assert.True(t, Connected(Balancer, Client))
	assert.True(t, Connected(Balancer, Balancer), "a redundant pair's adverts")
	assert.False(t, Connected(Balancer, Etcd))
	assert.False(t, Connected(Client, Etcd))
	assert.False(t, Connected(LockServer, LockServer))
}
