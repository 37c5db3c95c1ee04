package connectjwt

import (
	"errors"
	"net/url"
	"reflect"
	"testing"
)

func TestParseQuery(t *testing.T) {
	for _, tt := range []struct {
		raw     string
		want    url.Values
		wantErr bool
	}{
		{"", url.Values{}, false},
		{"a=1&b=2&a=3", url.Values{"a": {"1", "3"}, "b": {"2"}}, false},
		{"a&b=&&c", url.Values{"a": {""}, "b": {""}, "c": {""}}, false},
		{"q=a+b%20c&%78=%3B", url.Values{"q": {"a b c"}, "x": {";"}}, false},
		{"x=1=2", url.Values{"x": {"1=2"}}, false},
		{"x=1;role=admin", nil, true},
		{";", nil, true},
		{"x=%zz", nil, true},
		{"x=%4", nil, true},
		{"%g1=1", nil, true},
	} {
		got, err := ParseQuery(tt.raw)
		if (err != nil) != tt.wantErr || (err != nil && !errors.Is(err, ErrAmbiguousQuery)) {
			t.Errorf("ParseQuery(%q): error %v, want error %v", tt.raw, err, tt.wantErr)
			continue
		}
		if !tt.wantErr && !reflect.DeepEqual(got, tt.want) {
			t.Errorf("ParseQuery(%q) = %v, want %v", tt.raw, got, tt.want)
		}
	}
}

func TestNormalizePath(t *testing.T) {
	for _, tt := range []struct {
		path, want string
		wantErr    bool
	}{
		{"/api/issues", "/api/issues", false},
		{"/%61pi/%7e%2D", "/api/~-", false},
		{"/api/a%20b%c3%a9", "/api/a%20b%C3%A9", false},
		{"/api/.hidden/..x/x..", "/api/.hidden/..x/x..", false},
		{"/api//x", "/api//x", false},
		{"/api/../admin", "", true},
		{"/api/./x", "", true},
		{"/api/..", "", true},
		{"/api/%2e%2E/admin", "", true},
		{"/api/..;jsessionid=1/admin", "", true},
		{"/api/.;/admin", "", true},
		{"/api/..%3bx/admin", "", true},
		{"/api%2fadmin", "", true},
		{"/api%5Cadmin", "", true},
		{"/api\\admin", "", true},
		{"/api/%zz", "", true},
		{"/api/%", "", true},
	} {
		got, err := NormalizePath(tt.path)
		if (err != nil) != tt.wantErr || (err != nil && !errors.Is(err, ErrAmbiguousPath)) {
			t.Errorf("NormalizePath(%q): error %v, want error %v", tt.path, err, tt.wantErr)
			continue
		}
		if got != tt.want {
			t.Errorf("NormalizePath(%q) = %q, want %q", tt.path, got, tt.want)
		}
	}
}

func TestUnderPrefix(t *testing.T) {
	for _, tt := range []struct {
		path, prefix string
		want         bool
	}{
		{"/api", "/api/", true},
		{"/api/x", "/api/", true},
		{"/api/x", "/api", true},
		{"/apix", "/api/", false},
		{"/apix", "/api", false},
		{"/x", "/", true},
	} {
		if got := UnderPrefix(tt.path, tt.prefix); got != tt.want {
			t.Errorf("UnderPrefix(%q, %q) = %v, want %v", tt.path, tt.prefix, got, tt.want)
		}
	}
}
