package grpcapi

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"
)

// serveHTTP serves h as the gateway does (newHTTPServer) on loopback TCP.
func serveHTTP(t *testing.T, h http.Handler, to HTTPTimeouts) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := newHTTPServer(h, to)
	done := make(chan error, 1)
	go func() { done <- hs.Serve(lis) }()
	t.Cleanup(func() {
		_ = hs.Close()
		if err := <-done; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("Serve: %v", err)
		}
	})
	return lis.Addr().String()
}

// dial opens a raw connection whose reads give up after 20 s: a bound on a
// failing test, never what a passing one waits for.
func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
	return c
}

func readErrorResponse(t *testing.T, c net.Conn) (int, errorJSON) {
	t.Helper()
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("no response: %v", err)
	}
	defer resp.Body.Close()
	var e errorJSON
	_ = json.NewDecoder(resp.Body).Decode(&e)
	return resp.StatusCode, e
}

// An oversized body is 413 (not 400) with a message that gives the limit.
func TestHTTPOversizedBodyIs413(t *testing.T) {
	f := start(t)
	addr := serveHTTP(t, f.http, HTTPTimeouts{Read: 30 * time.Second, Idle: time.Minute, Write: 30 * time.Second})
	body := `{"image": "` + strings.Repeat("A", maxJSONBody) + `"}`
	resp, err := http.Post("http://"+addr+"/v1/images:upscale", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var e errorJSON
	_ = json.NewDecoder(resp.Body).Decode(&e)
	if resp.StatusCode != http.StatusRequestEntityTooLarge || e.Error.Code != "RESOURCE_EXHAUSTED" ||
		!strings.Contains(e.Error.Message, fmt.Sprint(maxJSONBody)) {
		t.Errorf("oversized body: %d %+v; want 413 RESOURCE_EXHAUSTED naming the limit", resp.StatusCode, e)
	}
}

// A client that sends its headers and then dribbles (here: stops) its body
// is answered 408 at --http-read-timeout instead of holding the connection.
func TestHTTPSlowBodyIs408(t *testing.T) {
	f := start(t)
	addr := serveHTTP(t, f.http, HTTPTimeouts{Read: 200 * time.Millisecond, Idle: time.Minute, Write: 30 * time.Second})
	c := dial(t, addr)
	if _, err := io.WriteString(c, "POST /v1/images:upscale HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"image\": \""); err != nil {
		t.Fatal(err)
	}
	code, e := readErrorResponse(t, c)
	if code != http.StatusRequestTimeout || e.Error.Code != "DEADLINE_EXCEEDED" || !strings.Contains(e.Error.Message, "--http-read-timeout") {
		t.Errorf("stalled body: %d %+v; want 408 DEADLINE_EXCEEDED naming --http-read-timeout", code, e)
	}
}

// A keep-alive connection with no next request is closed at --http-idle-timeout.
func TestHTTPIdleConnectionIsClosed(t *testing.T) {
	f := start(t)
	addr := serveHTTP(t, f.http, HTTPTimeouts{Read: time.Minute, Idle: 200 * time.Millisecond, Write: 30 * time.Second})
	c := dial(t, addr)
	if _, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Close {
		t.Fatalf("healthz: %d, close %v; want 200 on a kept-alive connection", resp.StatusCode, resp.Close)
	}
	if _, err := br.ReadByte(); !errors.Is(err, io.EOF) {
		t.Errorf("idle connection: read %v; want EOF (closed by the server)", err)
	}
}

// A response running longer than the read timeout is not cut: net/http lifts
// the read deadline once the body is read (else the read it then runs in the
// background, to notice a hang-up, would cancel the request's context).
func TestHTTPLongResponseOutlivesReadTimeout(t *testing.T) {
	const read = 200 * time.Millisecond
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.ReadAll(r.Body)
		select {
		case <-time.After(5 * read): // past the read deadline
			_, _ = io.WriteString(w, "done\n")
		case <-r.Context().Done():
			http.Error(w, "context ended: "+context.Cause(r.Context()).Error(), http.StatusInternalServerError)
		}
	})
	addr := serveHTTP(t, h, HTTPTimeouts{Read: read, Idle: time.Minute, Write: 30 * time.Second})
	for _, method := range []string{http.MethodGet, http.MethodPost} {
		req, err := http.NewRequest(method, "http://"+addr+"/", strings.NewReader(`{}`))
		if err != nil {
			t.Fatal(err)
		}
		if method == http.MethodGet {
			req.Body, req.ContentLength = http.NoBody, 0
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || string(b) != "done\n" {
			t.Errorf("%s: %d %q; want the response after the read timeout", method, resp.StatusCode, b)
		}
	}
	http.DefaultClient.CloseIdleConnections()
}

// A client that stops reading a streamed response: the write that finds its
// buffers full fails at the write deadline, so the handler ends and frees
// what it holds instead of blocking until the client hangs up.
func TestHTTPWriteDeadlineDropsSilentReader(t *testing.T) {
	werr := make(chan error, 1)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		chunk := []byte(strings.Repeat("x", 64<<10))
		for {
			if _, err := w.Write(chunk); err != nil {
				werr <- err
				return
			}
			w.(http.Flusher).Flush()
		}
	})
	addr := serveHTTP(t, h, HTTPTimeouts{Read: time.Minute, Idle: time.Minute, Write: 200 * time.Millisecond})
	d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		// A small receive buffer fills fast; the client never reads.
		return rc.Control(func(fd uintptr) { _ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4<<10) })
	}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, "GET /stream HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-werr:
		var nerr net.Error
		if !errors.As(err, &nerr) || !nerr.Timeout() {
			t.Errorf("write to a silent reader: %v; want a write timeout", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the handler is still blocked writing to a client that does not read")
	}
}
