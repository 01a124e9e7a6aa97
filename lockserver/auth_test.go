package lockserver

import (
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseAPIKeys(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    map[string]string
		wantErr string
	}{
		{name: "pairs, comments and blank lines",
			in:   "# key client\nk1 client-A\n\n   # indented comment\nk2\tclient-B  \n",
			want: map[string]string{"k1": "client-A", "k2": "client-B"}},
		{name: "one field", in: "k1 client-A\nk2\n", wantErr: "keys.txt:2: want"},
		{name: "three fields", in: "k1 client A\n", wantErr: "keys.txt:1: want"},
		{name: "duplicate key", in: "k1 a\n#\nk1 b\n", wantErr: "keys.txt:3: key given twice"},
		{name: "no keys", in: "# nothing\n\n", wantErr: "keys.txt: no keys"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseAPIKeys(strings.NewReader(tt.in), "keys.txt")
			if tt.wantErr != "" {
				require.Error(t, err)
				assert.True(t, errors.Is(err, ErrAuthFile))
				assert.Contains(t, err.Error(), tt.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}
