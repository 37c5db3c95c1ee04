package connectjwt

import (
	"net/url"
	"testing"
)

// The worked examples of docs/protocol.md §2.3, with their published hashes.
func TestQueryStringHashWorkedExamples(t *testing.T) {
	helloWorldQuery := "lic=none&tz=Australia%2FSydney&cp=%2Fjira&user_key=&loc=en-US&user_id=&jwt=abc.def.ghi&xdm_e=http%3A%2F%2Fstorm%3A2990&xdm_c=channel-servlet-hello-world&xdm_p=1"
	helloWorldCanonical := "cp=%2Fjira&lic=none&loc=en-US&tz=Australia%2FSydney&user_id=&user_key=&xdm_c=channel-servlet-hello-world&xdm_e=http%3A%2F%2Fstorm%3A2990&xdm_p=1"
	tests := []struct {
		name, method, path, contextPath, rawQuery string
		canonical, qsh                            string
	}{
		{"1 path without query", "GET", "/path", "", "", "GET&/path&", "799be84a7fa35570087163c0cd9af3abff7ac05c2c12ba0bb1d7eebc984b3ac2"},
		{"2 no path", "GET", "", "", "", "GET&/&", "c88caad15a1c1a900b8ac08aa9686f4e8184539bea1deda36e2f649430df3239"},
		{"2 root", "get", "/", "", "", "GET&/&", "c88caad15a1c1a900b8ac08aa9686f4e8184539bea1deda36e2f649430df3239"},
		{"3 hello world", "GET", "/hello-world", "", helloWorldQuery, "GET&/hello-world&" + helloWorldCanonical, "8063ff4ca1e41df7bc90c8ab6d0f6207d491cf6dad7c66ea797b4614b71922e9"},
		{"4 form body as query", "POST", "/hello-world", "", helloWorldQuery, "POST&/hello-world&" + helloWorldCanonical, "d7e7f00660965fc15745b2c423a89b85d0853c4463faca362e0371d008eb0927"},
		{"5 post without query", "POST", "/hello-world", "", "", "POST&/hello-world&", "6f95f3738e1b037a3bebbe0ad237d80fdbc1d5ae452e98ce03a9c004c178ebb4"},
		{"6 repeated parameter", "GET", "/path/to/service", "", "zee_last=param&repeated=parameter%201&first=param&repeated=parameter%202",
			"GET&/path/to/service&first=param&repeated=parameter%201,parameter%202&zee_last=param", "e52bb281606c3bd9ca16cfe96fe2df78f5d9ffa126f06befd750dfa10fa1a897"},
		{"7 bitbucket example", "GET", "/test", "", "param=value", "GET&/test&param=value", "be16910858a41fd19ea5c1b4e9decca9a784d1024cb00b2158defe2f29dc86dd"},
		{"8 installed", "POST", "/installed", "", "", "POST&/installed&", "4a2e1de8ca74e6cafe8862d332fa3ac7a8e51e692bc6d798ea4dfedc14948bf4"},
		{"9 uninstalled", "POST", "/uninstalled", "", "", "POST&/uninstalled&", "8a8d06f040b246544d605b08aeb419e30b5cf0e200f512888486585ecce6a52e"},
		{"10 enabled", "POST", "/enabled", "", "", "POST&/enabled&", "243b485a867f7315c33d0934c1e2c4157e570126e0f1a56c78c976f7a432cfe5"},
		{"10 disabled", "POST", "/disabled", "", "", "POST&/disabled&", "2d711a91cf18b5ce36b20a6c80a5e1eddfd763a79a52e88a639406b07b492940"},
		{"11 addons endpoint", "GET", "/rest/atlassian-connect/1/addons/my-app-key", "", "", "GET&/rest/atlassian-connect/1/addons/my-app-key&", "5a6d9e4435d4f308261280b525aa64895f3a7476ae4189d8a48dd74d6aed4c56"},
		{"11 confluence context path", "GET", "/wiki/rest/atlassian-connect/1/addons/my-app-key", "/wiki", "", "GET&/rest/atlassian-connect/1/addons/my-app-key&", "5a6d9e4435d4f308261280b525aa64895f3a7476ae4189d8a48dd74d6aed4c56"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := mustQuery(t, tt.rawQuery)
			if got := CanonicalRequest(tt.method, tt.path, tt.contextPath, q); got != tt.canonical {
				t.Errorf("canonical request\n got %s\nwant %s", got, tt.canonical)
			}
			if got := QueryStringHash(tt.method, tt.path, tt.contextPath, q); got != tt.qsh {
				t.Errorf("qsh = %s, want %s", got, tt.qsh)
			}
		})
	}
}

// The canonical-string vectors listed under the table in docs/protocol.md §2.3.
func TestCanonicalRequestVectors(t *testing.T) {
	tests := []struct {
		name, method, path, contextPath, rawQuery, want string
	}{
		{"mixed-case repeated values sort by code point", "GET", "/path/to/service", "",
			"repeated=parameter%201&first=param&repeated=Parameter%202&repeated=parameter%202",
			"GET&/path/to/service&first=param&repeated=Parameter%202,parameter%201,parameter%202"},
		{"context path stripped", "GET", "/base/path/to/service", "/base", "", "GET&/path/to/service&"},
		{"ampersand in path", "POST", "/jira/rest/api/2/project/jira&a=b&c=d", "/jira", "x=y", "POST&/rest/api/2/project/jira%26a=b%26c=d&x=y"},
		{"valueless parameters", "GET", "/hello-world", "", "a&b=foo&c", "GET&/hello-world&a=&b=foo&c="},
		{"trailing slash stripped", "GET", "/some/path/", "", "param=value", "GET&/some/path&param=value"},
		{"names sort by code point", "GET", "/p", "", "b=1&a=2&B=3&A=4", "GET&/p&A=4&B=3&a=2&b=1"},
		{"reserved characters encoded", "GET", "/p", "", "q=a%20b%2A~%21%27%28%29", "GET&/p&q=a%20b%2A~%21%27%28%29"},
		{"jwt parameter dropped", "GET", "/p", "", "jwt=x.y.z&a=1", "GET&/p&a=1"},
		{"context path is not a segment prefix", "GET", "/wikipedia", "/wiki", "", "GET&/wikipedia&"},
		{"context path with trailing slash", "GET", "/wiki/x", "/wiki/", "", "GET&/x&"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := CanonicalRequest(tt.method, tt.path, tt.contextPath, mustQuery(t, tt.rawQuery)); got != tt.want {
				t.Errorf("\n got %s\nwant %s", got, tt.want)
			}
		})
	}
}

func TestQueryStringHashForURL(t *testing.T) {
	target, _ := url.Parse("https://acme.atlassian.net/wiki/rest/atlassian-connect/1/addons/my-app-key")
	got, err := QueryStringHashForURL("GET", "https://acme.atlassian.net/wiki", target)
	if err != nil || got != "5a6d9e4435d4f308261280b525aa64895f3a7476ae4189d8a48dd74d6aed4c56" {
		t.Errorf("got %s, %v", got, err)
	}
	other, _ := url.Parse("https://evil.example.com/rest/x")
	if _, err := QueryStringHashForURL("GET", "https://acme.atlassian.net", other); err == nil {
		t.Errorf("a target on another host must be refused")
	}
}

func mustQuery(t testing.TB, raw string) url.Values {
	q, err := url.ParseQuery(raw)
	if err != nil {
		t.Fatal(err)
	}
	return q
}

func BenchmarkQueryStringHash(b *testing.B) {
	q := mustQuery(b, "lic=none&tz=Australia%2FSydney&cp=%2Fjira&user_key=&loc=en-US&user_id=&xdm_e=http%3A%2F%2Fstorm%3A2990")
	for b.Loop() {
		QueryStringHash("GET", "/hello-world", "", q)
	}
}
