package egress_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	authenticationv1 "k8s.io/api/authentication/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	"github.com/tenantry/tenantry/egress"
)

// reviewCounter counts the TokenReviews a Reviewer sends the API server,
// and those of one token apart.
type reviewCounter struct {
	all, of atomic.Int64
	token   string
}

// floodEndpoint is an endpoint like the suite's, with a Reviewer of its
// own whose TokenReviews are counted and metrics in reg.
func floodEndpoint(t *testing.T, limits egress.ReviewLimits, watch string) (*egress.Handler, *reviewCounter, *prometheus.Registry) {
	t.Helper()
	direct, err := client.NewWithWatch(env.Config, client.Options{Scheme: env.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	counter := &reviewCounter{token: watch}
	reviews := interceptor.NewClient(direct, interceptor.Funcs{
		Create: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
			if tr, ok := obj.(*authenticationv1.TokenReview); ok {
				counter.all.Add(1)
				if tr.Spec.Token == counter.token {
					counter.of.Add(1)
				}
			}
			return c.Create(ctx, obj, opts...)
		},
	})
	reg := prometheus.NewRegistry()
	metrics := egress.NewMetrics(reg)
	h := &egress.Handler{
		Reader: informers,
		// The TTL outlives the flood on a slow machine, so that a re-review
		// of the genuine caller could only be the flood's doing.
		Reviewer:   &egress.Reviewer{Client: reviews, TTL: 5 * time.Minute, Limits: limits, Metrics: metrics},
		Transport:  handler.Transport,
		UserTokens: handler.UserTokens,
		Now:        clock.Now,
		Metrics:    metrics,
	}
	return h, counter, reg
}

// jwtOf encodes a header and claims as a JWT with a random signature: the
// shape of a token, signed by nobody.
func jwtOf(header, claims any) string {
	enc := func(v any) string {
		b, _ := json.Marshal(v)
		return base64.RawURLEncoding.EncodeToString(b)
	}
	sig := make([]byte, 256)
	_, _ = rand.Read(sig)
	return enc(header) + "." + enc(claims) + "." + base64.RawURLEncoding.EncodeToString(sig)
}

func b64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

// junkToken is the i-th token of a flood: a third malformed, a third for
// another audience, a third well-formed for the endpoint's audience but
// signed by nobody (only a review can refuse those).
func junkToken(i int, ns, wrongAudience string) (token, kind string) {
	header := map[string]string{"alg": "RS256", "kid": fmt.Sprintf("k%d", i%7)}
	claims := map[string]any{
		"iss": "https://kubernetes.default.svc.cluster.local", "sub": "system:serviceaccount:" + ns + ":worker",
		"exp": time.Now().Add(time.Hour).Unix(), "jti": fmt.Sprintf("junk-%d", i),
	}
	switch i % 3 {
	case 0:
		switch i / 3 % 7 {
		case 0:
			return fmt.Sprintf("garbage-%d", i), "malformed"
		case 1:
			return b64(`{"alg":"RS256"}`) + "." + b64(fmt.Sprintf(`{"n":%d}`, i)), "malformed" // two segments
		case 2:
			return fmt.Sprintf("a!.b$.c%d", i), "malformed" // not base64url
		case 3:
			return b64("not json") + "." + b64(`{"aud":"tenantry-egress"}`) + "." + b64(fmt.Sprint(i)), "malformed"
		case 4:
			return b64(`{"typ":"JWT"}`) + "." + b64(`{"aud":"tenantry-egress"}`) + "." + b64(fmt.Sprint(i)), "malformed" // no alg
		case 5:
			return b64(`{"alg":"RS256"}`) + "." + b64(`["tenantry-egress"]`) + "." + b64(fmt.Sprint(i)), "malformed" // claims no object
		default:
			return strings.Repeat("a", egress.MaxTokenLength) + fmt.Sprintf(".b.c%d", i), "malformed" // too long
		}
	case 1:
		if i%501 == 1 {
			return wrongAudience, "audience" // a genuine token, for the API server
		}
		claims["aud"] = []string{"https://kubernetes.default.svc.cluster.local", "vault"}
		if i%2 == 0 {
			claims["aud"] = "https://kubernetes.default.svc.cluster.local"
		}
		return jwtOf(header, claims), "audience"
	}
	claims["aud"] = []string{egress.DefaultAudience}
	return jwtOf(header, claims), "forged"
}

// TestJunkTokenFloodCostsBoundedReviews replays issue 30's finding 2: a
// flood of junk tokens from many addresses. Malformed tokens and tokens
// for another audience cost no TokenReview; forged ones spend from their
// source's and the endpoint's buckets; the genuine caller, reviewed
// before the flood, is never reviewed again and keeps being served.
func TestJunkTokenFloodCostsBoundedReviews(t *testing.T) {
	f := newFixture(t)
	s := f.install("jira", false)
	wrongAudience := f.serviceAccountToken("worker", "https://kubernetes.default.svc")
	h, reviews, reg := floodEndpoint(t, egress.ReviewLimits{}, f.token)
	srv := httptest.NewServer(h)
	defer srv.Close()
	genuine := func() {
		t.Helper()
		target := strings.Replace(f.url(s, "/rest/api/3/myself"), endpoint.URL, srv.URL, 1)
		if resp, _ := call(t, http.MethodGet, target, f.token, nil, nil); resp.StatusCode != http.StatusOK {
			t.Errorf("the genuine caller: %d %s", resp.StatusCode, resp.Header.Get(egress.ReasonHeader))
		}
	}
	start := time.Now() // the overall bucket is made full on the first call
	genuine()           // reviewed once, then cached
	accepted := len(jira.Accepted())

	const junk, workers = 10000, 16
	var (
		next     atomic.Int64
		mu       sync.Mutex
		answers  = map[string]int{} // kind + " " + status + " " + reason
		noRetry  atomic.Int64
		wg       sync.WaitGroup
		path     = "/" + f.ns + "/" + f.app.Name + "/tenants/" + s.tenant.ClientKey + "/rest/api/3/myself"
		genuineN atomic.Int64
	)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= junk {
					return
				}
				token, kind := junkToken(i, f.ns, wrongAudience)
				req := httptest.NewRequest(http.MethodGet, path, nil)
				req.Header.Set("Authorization", "Bearer "+token)
				// 2,500 addresses, IPv4 and IPv6, each claiming to forward
				// for yet another: the endpoint believes the connection.
				if a := i % 2500; a%5 == 0 {
					req.RemoteAddr = fmt.Sprintf("[fd00::%x]:40000", a)
				} else {
					req.RemoteAddr = fmt.Sprintf("10.%d.%d.%d:40000", a/65536, a/256%256, a%256)
				}
				req.Header.Set("X-Forwarded-For", fmt.Sprintf("192.0.2.%d", i%250))
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, req)
				reason := rec.Header().Get(egress.ReasonHeader)
				if (rec.Code == 429 || rec.Code == 503) && rec.Header().Get("Retry-After") == "" {
					noRetry.Add(1)
				}
				mu.Lock()
				answers[fmt.Sprintf("%s %d %s", kind, rec.Code, reason)]++
				mu.Unlock()
				if i%500 == 0 {
					genuine()
					genuineN.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	genuine()

	made := reviews.all.Load()
	t.Logf("%d junk tokens in %s: %d TokenReviews; answers %v", junk, elapsed.Round(time.Millisecond), made, answers)
	t.Logf("metrics: reviews %v, refused before review %v", counts(t, reg, "tenantry_egress_token_reviews_total"), counts(t, reg, "tenantry_egress_token_refusals_total"))
	if bound := int64(egress.DefaultReviewsTotalBurst) + int64(egress.DefaultReviewsTotal*elapsed.Seconds()) + 1; made > bound {
		t.Errorf("%d TokenReviews in %s, want at most %d (the overall bucket)", made, elapsed, bound)
	}
	if n := reviews.of.Load(); n != 1 {
		t.Errorf("the genuine caller was reviewed %d times, want once (before the flood)", n)
	}
	if genuineN.Load() != junk/500 {
		t.Errorf("the genuine caller called %d times during the flood", genuineN.Load())
	}
	if noRetry.Load() != 0 {
		t.Errorf("%d throttled answers without Retry-After", noRetry.Load())
	}
	for answer, n := range answers {
		kind, rest, _ := strings.Cut(answer, " ")
		ok := false
		switch kind {
		case "malformed", "audience":
			// Refused without a review, so never throttled.
			ok = rest == "401 InvalidToken"
		case "forged":
			ok = rest == "401 InvalidToken" || rest == "429 TokenReviewRateLimited" || rest == "503 TokenReviewOverloaded"
		}
		if !ok {
			t.Errorf("%d %s tokens answered %s", n, kind, rest)
		}
	}
	shaped := counts(t, reg, "tenantry_egress_token_refusals_total")
	if shaped["malformed"] < junk/3 || shaped["audience"] < junk/3 {
		t.Errorf("refused before review: %v, want every malformed and other-audience token", shaped)
	}
	if n := len(jira.Accepted()) - accepted; n != junk/500+1 {
		t.Errorf("%d calls reached the product, want the genuine caller's %d", n, junk/500+1)
	}
}

// TestOneSourceCannotSpendTheEndpointsReviews: one address forging many
// tokens, each posing as another source with X-Forwarded-For, is held to
// its own bucket (429 with Retry-After), while a neighbour's token is
// still reviewed.
func TestOneSourceCannotSpendTheEndpointsReviews(t *testing.T) {
	f := newFixture(t)
	s := f.install("jira", false)
	h, reviews, _ := floodEndpoint(t, egress.ReviewLimits{}, f.token)
	path := "/" + f.ns + "/" + f.app.Name + "/tenants/" + s.tenant.ClientKey + "/rest/api/3/myself"
	send := func(token, from, xff string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodGet, path, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		req.RemoteAddr = from
		req.Header.Set("X-Forwarded-For", xff)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}
	const forged = 1000
	start := time.Now()
	limited := 0
	for i := range forged {
		token, _ := junkToken(3*i+2, f.ns, "")
		rec := send(token, "10.200.0.1:5555", fmt.Sprintf("198.51.100.%d", i%250))
		switch {
		case rec.Code == 429 && rec.Header().Get(egress.ReasonHeader) == "TokenReviewRateLimited" && rec.Header().Get("Retry-After") != "":
			limited++
		case rec.Code == 401:
		default:
			t.Fatalf("forged token %d: %d %q", i, rec.Code, rec.Header().Get(egress.ReasonHeader))
		}
	}
	elapsed := time.Since(start)
	made := reviews.all.Load()
	t.Logf("%d forged tokens from one address in %s: %d TokenReviews, %d answered 429", forged, elapsed.Round(time.Millisecond), made, limited)
	if bound := int64(egress.DefaultReviewsPerSourceBurst) + int64(egress.DefaultReviewsPerSource*elapsed.Seconds()) + 1; made > bound {
		t.Errorf("one source caused %d TokenReviews in %s, want at most %d", made, elapsed, bound)
	}
	// The neighbour's genuine token is reviewed, and it is served.
	if rec := send(f.token, "10.200.0.2:5555", ""); rec.Code != http.StatusOK {
		t.Errorf("the neighbour: %d %q", rec.Code, rec.Header().Get(egress.ReasonHeader))
	}
	if n := reviews.of.Load(); n != 1 {
		t.Errorf("the neighbour's token was reviewed %d times, want 1", n)
	}
}

// counts sums a counter's samples by their one label's value.
func counts(t *testing.T, reg *prometheus.Registry, name string) map[string]float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range families {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			label := ""
			if len(m.GetLabel()) > 0 {
				label = m.GetLabel()[0].GetValue()
			}
			out[label] += m.GetCounter().GetValue()
		}
	}
	return out
}
