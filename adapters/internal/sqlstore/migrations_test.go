package sqlstore

import (
	"testing"
	"testing/fstest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestReadMigrations_OrdersByVersionAndRefusesBadNames(t *testing.T) {
	ms, err := readMigrations(fstest.MapFS{
		"m/0010_later.sql": {Data: []byte("B")},
		"m/0002_first.sql": {Data: []byte("A")},
	}, "m/*.sql")
	require.NoError(t, err)
	require.Len(t, ms, 2)
	assert.Equal(t, migration{Version: 2, Name: "0002_first.sql", SQL: "A"}, ms[0])
	assert.Equal(t, 10, ms[1].Version)

	_, err = readMigrations(fstest.MapFS{"m/init.sql": {}}, "m/*.sql")
	assert.ErrorContains(t, err, "must start with a version number")
	_, err = readMigrations(fstest.MapFS{"m/0001_a.sql": {}, "m/01_b.sql": {}}, "m/*.sql")
	assert.ErrorContains(t, err, "share a version")
}
