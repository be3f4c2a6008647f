package proxy

import (
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/portico-lb/portico/config"
	"github.com/portico-lb/portico/proxy/filter"
)

// Admission is the front door's verdict on one request: limits, the
// listener's allow list, the canonical path, the host, the endpoint
// rules, then the deciding rule's rate limit, in that order. Every front
// (the HTTP/1.1 fast path, the HTTP/2 fast path, net/http's handler,
// websocket upgrades) and -explain get it from Admitter.Admit, so none
// of them can decide differently; a front that parses a request its own
// way only fills in AdmitRequest.
type Admission struct {
	// Allow reports whether the request may be proxied.
	Allow bool
	// Status is the answer to a denied request: 400, 403, 414, 429 or 431.
	Status int
	// Reason names the check that denied it, as logs and the
	// portico_denied_total metric say: limit, allow, bad-path, bad-host,
	// rule or rate-limit. "" when allowed.
	Reason string
	// Message is the short text a denied client gets.
	Message string
	// Canonical is the canonical path that the rules checked and that is
	// forwarded; set once the path was accepted.
	Canonical string
	// Query is the target's query, "?" included ("" when none).
	Query string
	// Host is the normalised host the rules matched.
	Host string
	// Rules is true when the endpoint rules were consulted; Decision then
	// says which rule decided and why.
	Rules    bool
	Decision filter.Decision
	// Limit is the rate limit of the rule that admitted the request (nil
	// when it has none), and Exempt whether the client is exempt from it.
	Limit  *config.Limit
	Exempt bool
	// RetryAfter, on a rate-limit denial (429), is the time until the
	// client's next token.
	RetryAfter time.Duration
}

// AdmitRequest is what admission needs of a request, as a front parsed it.
type AdmitRequest struct {
	// Target is the request target as received: origin form
	// ("/login?x"), absolute form ("https://host/login"), or "*". HTTP/2
	// sends its :path here.
	Target string
	// Host is the Host field or the :authority.
	Host string
	// HeaderCount is the number of header field lines.
	HeaderCount int
	// Client is the client address decided for the request (the peer, a
	// trusted PROXY header's source, or X-Forwarded-For behind a trusted
	// proxy).
	Client netip.Addr
}

// Admitter applies one listener's admission settings. It is immutable and
// built with the runtime (or by -explain from the same configuration);
// the rate limiters it takes tokens from are the server's, and outlive it.
type Admitter struct {
	maxURL, maxFields int
	allow             []netip.Prefix // nil = everyone
	policy            *filter.Policy
	limits            []ruleLimit // by rule index; nil when no rule has a limit
}

// ruleLimit is one rule's rate limit.
type ruleLimit struct {
	cfg     *config.Limit // nil: the rule has no limit
	buckets *rateLimiter  // nil: nothing is counted (-explain)
}

// NewAdmitter compiles a listener's admission settings. Its rate limits
// are reported (Admission.Limit) but never counted: that is -explain's
// admitter, which must not spend a client's tokens.
func NewAdmitter(l *config.Listener) *Admitter {
	return newAdmitter(l, nil)
}

// newAdmitter is NewAdmitter with each limited rule's buckets from
// buckets (nil: none counted).
func newAdmitter(l *config.Listener, buckets func(*config.Rule) *rateLimiter) *Admitter {
	a := &Admitter{maxURL: l.MaxURLLength, maxFields: l.MaxHeaderCount, allow: l.Allow, policy: filter.Compile(l.Rules)}
	for i, r := range l.Rules {
		if r == nil || r.Limit == nil {
			continue
		}
		if a.limits == nil {
			a.limits = make([]ruleLimit, len(l.Rules))
		}
		a.limits[i].cfg = r.Limit
		if buckets != nil {
			a.limits[i].buckets = buckets(r)
		}
	}
	return a
}

// Policy is the listener's compiled endpoint rules (for -explain's account
// of each rule).
func (a *Admitter) Policy() *filter.Policy { return a.policy }

// WithoutAllowList is a copy that does not apply the listener's allow
// list: for -explain when no client address is given.
func (a *Admitter) WithoutAllowList() *Admitter {
	b := *a
	b.allow = nil
	return &b
}

// AllowsClient applies the listener's allow list (none = everyone). A tcp
// listener admits a connection on it alone.
func (a *Admitter) AllowsClient(c netip.Addr) bool {
	return a.allow == nil || inPrefixes(a.allow, c)
}

// AdmitConn decides on one tcp connection: a tcp listener sees no host or
// path, so its allow list alone applies.
func (a *Admitter) AdmitConn(c netip.Addr) Admission {
	if !a.AllowsClient(c) {
		return deny(http.StatusForbidden, "allow", "forbidden")
	}
	return Admission{Allow: true}
}

// AllowList is the listener's allow list; nil admits everyone.
func (a *Admitter) AllowList() []netip.Prefix { return a.allow }

// Admit decides on one request. It does not allocate for an origin-form
// target that passes.
func (a *Admitter) Admit(r AdmitRequest) Admission {
	if len(r.Target) > a.maxURL {
		return deny(http.StatusRequestURITooLong, "limit", "request URI too long")
	}
	if r.HeaderCount > a.maxFields {
		return deny(http.StatusRequestHeaderFieldsTooLarge, "limit", "too many header fields")
	}
	if !a.AllowsClient(r.Client) {
		return deny(http.StatusForbidden, "allow", "forbidden")
	}
	raw, query, ok := targetPath(r.Target, r.Host)
	if !ok {
		return deny(http.StatusBadRequest, "bad-path", "bad request target")
	}
	canonical, err := filter.Canonicalize(raw)
	if err != nil {
		return deny(http.StatusBadRequest, "bad-path", "bad request path")
	}
	host, ok := filter.NormalizeHost(r.Host)
	if !ok || r.Host == "" {
		// No host (HTTP/1.0 may omit it) would reach the node as the
		// node's own address.
		v := deny(http.StatusBadRequest, "bad-host", "bad host")
		v.Canonical, v.Query = canonical, query
		return v
	}
	v := Admission{Canonical: canonical, Query: query, Host: host, Rules: true,
		Decision: a.policy.Decide(host, canonical, r.Client)}
	if !v.Decision.Allow {
		v.Status, v.Reason, v.Message = http.StatusForbidden, "rule", "forbidden"
		return v
	}
	if i := v.Decision.Rule; i >= 0 && i < len(a.limits) && a.limits[i].cfg != nil {
		// The rule that admitted the request limits its rate.
		rl := &a.limits[i]
		v.Limit, v.Exempt = rl.cfg, inPrefixes(rl.cfg.Exempt, v.Decision.Client)
		if !v.Exempt && rl.buckets != nil {
			if ok, wait := rl.buckets.take(v.Decision.Client); !ok {
				v.Status, v.Reason, v.Message, v.RetryAfter = http.StatusTooManyRequests, "rate-limit", "too many requests", wait
				return v
			}
		}
	}
	v.Allow = true
	return v
}

func deny(status int, reason, msg string) Admission {
	return Admission{Status: status, Reason: reason, Message: msg}
}

// targetPath splits a request target into the path exactly as received
// (so the canonicaliser decodes it once) and the query.
//
// An absolute-form target (GET http://host/path) replaces the Host field
// (RFC 9112 §3.2.2): net/http sets the request's host from the target, so
// the rules and the node both see the target's host, and a target whose
// host differs from host is refused. Targets with user info, another
// scheme, or no host are refused, and so is "*".
func targetPath(target, host string) (path, query string, ok bool) {
	uri := target
	if uri == "*" {
		return "", "", false
	}
	if !strings.HasPrefix(uri, "/") {
		u, err := url.Parse(uri)
		if err != nil || u.Host == "" || u.User != nil || (u.Scheme != "http" && u.Scheme != "https") {
			return "", "", false
		}
		if !strings.EqualFold(u.Host, host) {
			return "", "", false
		}
		uri = uri[len(u.Scheme)+len("://")+len(u.Host):]
		if uri == "" {
			uri = "/"
		} else if uri[0] != '/' {
			return "", "", false // "http://host?x" or "http://host#x"
		}
	}
	if i := strings.IndexByte(uri, '?'); i >= 0 {
		return uri[:i], uri[i:], true
	}
	return uri, "", true
}
