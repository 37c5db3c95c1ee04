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

func TestGrants(t *testing.T) {
	old, young := app("team-b", "hijacker", time.Unix(1, 0), false), app("team-a", "owner", time.Unix(2, 0), false)
	old.Spec.Key, young.Spec.Key = "com.acme.jira", "com.acme.jira"
	tests := []struct {
		name   string
		grants Grants
		want   *connectv1.ConnectApp
	}{
		{"no grants: the oldest wins (the default)", nil, old},
		{"granted to the owner's namespace", Grants{{"com.acme.*", "team-a"}}, young},
		{"granted to both: the oldest of them", Grants{{"com.acme.*", "team-a"}, {"com.acme.jira", "team-b"}}, old},
		{"granted only for other keys: nobody", Grants{{"com.other.*", "team-a"}}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.grants.Owner([]*connectv1.ConnectApp{old, young}); got != tt.want {
				t.Errorf("owner = %v, want %v", got, tt.want)
			}
		})
	}
	for _, bad := range []string{"", "com.acme.*", "=team-a", "com.acme.*=", "[=team-a"} {
		if _, err := ParseGrant(bad); err == nil {
			t.Errorf("ParseGrant(%q) accepted", bad)
		}
	}
	if g, err := ParseGrant("com.acme.*=team-a"); err != nil || g != (Grant{"com.acme.*", "team-a"}) {
		t.Errorf("ParseGrant = %+v, %v", g, err)
	}
}
