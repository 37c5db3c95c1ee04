package appkey

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	connectv1 "github.com/tenantry/tenantry/api/v1"
)

func app(ns, name string, created time.Time, deleting bool) *connectv1.ConnectApp {
	a := &connectv1.ConnectApp{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, CreationTimestamp: metav1.NewTime(created)}}
	if deleting {
		a.DeletionTimestamp = &metav1.Time{Time: created}
	}
	return a
}

func TestOwner(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	tests := []struct {
		name string
		apps []*connectv1.ConnectApp
		want string
	}{
		{"none", nil, ""},
		{"one", []*connectv1.ConnectApp{app("a", "x", t0, false)}, "a/x"},
		{"oldest wins", []*connectv1.ConnectApp{app("b", "new", t0.Add(time.Hour), false), app("a", "old", t0, false)}, "a/old"},
		{"tie broken by namespace then name", []*connectv1.ConnectApp{app("b", "a", t0, false), app("a", "z", t0, false), app("a", "y", t0, false)}, "a/y"},
		{"an app being deleted hands over", []*connectv1.ConnectApp{app("a", "old", t0, true), app("b", "new", t0.Add(time.Hour), false)}, "b/new"},
		{"all being deleted", []*connectv1.ConnectApp{app("a", "old", t0, true)}, ""},
	}
	for _, tt := range tests {
		got := Owner(tt.apps)
		name := ""
		if got != nil {
			name = got.Namespace + "/" + got.Name
		}
		if name != tt.want {
			t.Errorf("%s: Owner = %q, want %q", tt.name, name, tt.want)
		}
	}
}
