package grpcapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/hirez-ml/hirez/gateway/internal/pipeline"
	"github.com/hirez-ml/hirez/gateway/internal/studio"
	"github.com/hirez-ml/hirez/platform/fault"
	"github.com/hirez-ml/hirez/platform/rpcerr"
	pb "github.com/hirez-ml/hirez/proto/hirez/v1"
)

// maxJSONBody bounds a request body: an 8 MiB image is about 11 MiB as base64.
const maxJSONBody = pb.MaxEncodedImageBytes*4/3 + 64<<10

// HTTP serves the gateway as HTTP/JSON, the canonical proto3 JSON mapping of
// the GatewayService messages:
//
//	POST /v1/images:generate   GenerateImagesRequest → newline-delimited
//	                           GenerateImagesResponse objects, each written and
//	                           flushed as soon as its image is done; with
//	                           "previews": true also preview lines, whose only
//	                           key is "preview" ({"preview": {"index", "seed",
//	                           "side", "png", "stage", "pass"}}), each before
//	                           its image's final line
//	POST /v1/images:upscale    GatewayServiceUpscaleRequest → GatewayServiceUpscaleResponse
//	GET  /v1/labels            GatewayServiceListLabelsRequest as query
//	                           parameters (pipeline=PIPELINE_SINGLE_DCGAN or
//	                           its number, generator.name, generator.version;
//	                           all optional) → GatewayServiceListLabelsResponse,
//	                           with "labels": [] when the model has none
//	GET  /healthz              200 while the process answers (liveness: never
//	                           the dependencies, so their outage restarts nothing)
//	GET  /readyz               200 when ready() is true (serving, with a healthy
//	                           generator and upscaler reachable, not shutting
//	                           down), else 503
//
// Errors are {"error": {"code": "INVALID_ARGUMENT", "message": …}} with the
// HTTP status of the gRPC code; an error after the stream started is its last
// line (the status line has gone by then).
func HTTP(svc *pipeline.Service, ready func() bool) http.Handler {
	h := &httpAPI{svc: svc}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/images:generate", h.generate)
	mux.HandleFunc("POST /v1/images:upscale", h.upscale)
	mux.HandleFunc("GET /v1/labels", h.labels)
	studio.New().Register(mux) // the web studio: GET / and /studio/… (docs/studio.md)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !ready() {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		_, _ = io.WriteString(w, "ok\n")
	})
	return mux
}

type httpAPI struct{ svc *pipeline.Service }

var (
	unmarshal = protojson.UnmarshalOptions{DiscardUnknown: false}
	marshal   = protojson.MarshalOptions{}
	// marshalAll writes empty fields too, so that a model with no labels
	// answers "labels": [] rather than leaving the field out.
	marshalAll = protojson.MarshalOptions{EmitUnpopulated: true}
)

func readJSON(w http.ResponseWriter, r *http.Request, msg proto.Message) bool {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxJSONBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		var nerr net.Error
		switch {
		case errors.As(err, &tooBig):
			writeErrorHTTP(w, http.StatusRequestEntityTooLarge, codes.ResourceExhausted, fmt.Sprintf(
				"request body is larger than %d bytes (an image of at most %d bytes, base64-encoded, and the JSON around it)", tooBig.Limit, pb.MaxEncodedImageBytes))
		case errors.As(err, &nerr) && nerr.Timeout():
			writeErrorHTTP(w, http.StatusRequestTimeout, codes.DeadlineExceeded,
				"request body not received in time (the gateway's --http-read-timeout): send it at once, or ask the operator for a longer timeout on slow links")
		default:
			writeError(w, codes.InvalidArgument, fmt.Sprintf("read body: %v", err))
		}
		return false
	}
	if err := unmarshal.Unmarshal(body, msg); err != nil {
		writeError(w, codes.InvalidArgument, fmt.Sprintf("body is not a valid %s in JSON: %v", msg.ProtoReflect().Descriptor().Name(), err))
		return false
	}
	return true
}

func (h *httpAPI) generate(w http.ResponseWriter, r *http.Request) {
	var req pb.GenerateImagesRequest
	if !readJSON(w, r, &req) {
		return
	}
	preq, err := ToRequest(&req)
	if err == nil {
		err = h.validate(preq)
	}
	preq.Client = clientKey(r.RemoteAddr)
	if err != nil {
		writeStatus(w, err)
		return
	}
	flusher, _ := w.(http.Flusher)
	started := false
	// r.Context() ends when the client hangs up, cancelling every downstream call.
	err = h.svc.GenerateImages(r.Context(), preq, func(img pipeline.Image) error {
		line, err := marshal.Marshal(ToResponse(img))
		if err != nil {
			return err
		}
		if !started {
			w.Header().Set("Content-Type", "application/x-ndjson")
			w.WriteHeader(http.StatusOK)
			started = true
		}
		if _, err := w.Write(append(line, '\n')); err != nil {
			return err
		}
		if flusher != nil {
			flusher.Flush()
		}
		return nil
	})
	if err != nil {
		if !started {
			writeStatus(w, err)
			return
		}
		s := rpcerr.Status(err)
		_ = json.NewEncoder(w).Encode(errorBody(s.Code(), s.Message()))
	}
}

// validate runs the pipeline's own checks first so a bad request gets a
// proper HTTP status rather than an error line after a 200.
func (h *httpAPI) validate(r pipeline.Request) error {
	_, err := h.svc.Validate(r)
	return err
}

func (h *httpAPI) upscale(w http.ResponseWriter, r *http.Request) {
	var req pb.GatewayServiceUpscaleRequest
	if !readJSON(w, r, &req) {
		return
	}
	resp, err := (&Server{svc: h.svc}).Upscale(r.Context(), &req)
	if err != nil {
		writeStatus(w, err)
		return
	}
	body, err := marshal.Marshal(resp)
	if err != nil {
		writeStatus(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(body)
}

func (h *httpAPI) labels(w http.ResponseWriter, r *http.Request) {
	req, err := listLabelsQuery(r.URL.Query())
	if err != nil {
		writeStatus(w, err)
		return
	}
	resp, err := (&Server{svc: h.svc}).ListLabels(r.Context(), req)
	if err != nil {
		writeStatus(w, err)
		return
	}
	body, err := marshalAll.Marshal(resp)
	if err != nil {
		writeStatus(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(body)
}

// listLabelsQuery reads GET /v1/labels's query parameters, named after the
// request's fields as gRPC transcoding names them.
func listLabelsQuery(q url.Values) (*pb.GatewayServiceListLabelsRequest, error) {
	req := &pb.GatewayServiceListLabelsRequest{}
	for key, vals := range q {
		if len(vals) != 1 {
			return nil, fault.Invalid("query parameter %s is given %d times; give it once", key, len(vals))
		}
		v := vals[0]
		switch key {
		case "pipeline":
			if n, ok := pb.Pipeline_value[v]; ok {
				req.Pipeline = pb.Pipeline(n)
			} else if n, err := strconv.ParseInt(v, 10, 32); err == nil {
				req.Pipeline = pb.Pipeline(n)
			} else {
				return nil, fault.Invalid("pipeline %q is not a pipeline; use PIPELINE_DCGAN_SRCNN, PIPELINE_MULTISTAGE_GAN or PIPELINE_SINGLE_DCGAN", v)
			}
		case "generator.name", "generator.version":
			if req.Generator == nil {
				req.Generator = &pb.ModelRef{}
			}
			if key == "generator.name" {
				req.Generator.Name = v
			} else {
				req.Generator.Version = v
			}
		default:
			return nil, fault.Invalid("unknown query parameter %q; GET /v1/labels takes pipeline, generator.name and generator.version", key)
		}
	}
	return req, nil
}

type errorJSON struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

func errorBody(c codes.Code, msg string) errorJSON {
	var e errorJSON
	e.Error.Code = codeName(c)
	e.Error.Message = msg
	return e
}

// codeName is the canonical upper-snake name of a code (as google.rpc.Code).
func codeName(c codes.Code) string {
	names := map[codes.Code]string{
		codes.OK: "OK", codes.Canceled: "CANCELLED", codes.Unknown: "UNKNOWN", codes.InvalidArgument: "INVALID_ARGUMENT",
		codes.DeadlineExceeded: "DEADLINE_EXCEEDED", codes.NotFound: "NOT_FOUND", codes.AlreadyExists: "ALREADY_EXISTS",
		codes.PermissionDenied: "PERMISSION_DENIED", codes.ResourceExhausted: "RESOURCE_EXHAUSTED",
		codes.FailedPrecondition: "FAILED_PRECONDITION", codes.Aborted: "ABORTED", codes.OutOfRange: "OUT_OF_RANGE",
		codes.Unimplemented: "UNIMPLEMENTED", codes.Internal: "INTERNAL", codes.Unavailable: "UNAVAILABLE",
		codes.DataLoss: "DATA_LOSS", codes.Unauthenticated: "UNAUTHENTICATED",
	}
	if n, ok := names[c]; ok {
		return n
	}
	return c.String()
}

// HTTPStatus maps a gRPC code to an HTTP status as google.rpc.Code documents.
func HTTPStatus(c codes.Code) int {
	switch c {
	case codes.OK:
		return http.StatusOK
	case codes.Canceled:
		return 499 // client closed request
	case codes.InvalidArgument, codes.OutOfRange, codes.FailedPrecondition:
		return http.StatusBadRequest
	case codes.DeadlineExceeded:
		return http.StatusGatewayTimeout
	case codes.NotFound:
		return http.StatusNotFound
	case codes.AlreadyExists, codes.Aborted:
		return http.StatusConflict
	case codes.PermissionDenied:
		return http.StatusForbidden
	case codes.Unauthenticated:
		return http.StatusUnauthorized
	case codes.ResourceExhausted:
		return http.StatusTooManyRequests
	case codes.Unimplemented:
		return http.StatusNotImplemented
	case codes.Unavailable:
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

func writeStatus(w http.ResponseWriter, err error) {
	s := rpcerr.Status(err)
	if d, ok := rpcerr.RetryDelay(s); ok {
		// RFC 9110 §10.2.3: whole seconds, rounded up so that a client
		// does not come back early.
		w.Header().Set("Retry-After", strconv.Itoa(int((d+time.Second-1)/time.Second)))
	}
	writeError(w, s.Code(), s.Message())
}

func writeError(w http.ResponseWriter, c codes.Code, msg string) {
	writeErrorHTTP(w, HTTPStatus(c), c, msg)
}

// writeErrorHTTP is writeError for the HTTP-only failures whose status no
// gRPC code maps to (413, 408).
func writeErrorHTTP(w http.ResponseWriter, httpStatus int, c codes.Code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(httpStatus)
	_ = json.NewEncoder(w).Encode(errorBody(c, msg))
}

// HTTPTimeouts bound how long one client may hold the HTTP server's
// connections and handlers (docs/operations.md, "Slow or silent clients").
type HTTPTimeouts struct {
	// Read bounds reading one request, headers and body (http.Server's
	// ReadTimeout): a client dribbling its body is answered 408 and dropped.
	Read time.Duration
	// Idle bounds a keep-alive connection between requests.
	Idle time.Duration
	// Write bounds each write of a response (a streamed line, a flush): a
	// client that stops reading is dropped then, however long the response;
	// the whole response has no bound, as a 256-image stream takes minutes.
	Write time.Duration
}

// readHeaderTimeout bounds the request line and headers on their own, which
// a client sends at once.
const readHeaderTimeout = 10 * time.Second

// NewHTTPServer returns the gateway's HTTP server: HTTP(svc, ready) under t.
func NewHTTPServer(svc *pipeline.Service, ready func() bool, t HTTPTimeouts) *http.Server {
	return newHTTPServer(HTTP(svc, ready), t)
}

func newHTTPServer(h http.Handler, t HTTPTimeouts) *http.Server {
	header := readHeaderTimeout
	if t.Read > 0 {
		header = min(header, t.Read)
	}
	return &http.Server{
		Handler:           withDeadlines(h, t.Write),
		ReadHeaderTimeout: header,
		ReadTimeout:       t.Read,
		IdleTimeout:       t.Idle,
		// net/http resets a connection's write deadline for each request only
		// when WriteTimeout is set; every write then extends it (withDeadlines).
		WriteTimeout: t.Write,
	}
}

// withDeadlines gives every response write its own deadline of write (0:
// none). The server's ReadTimeout needs no such care: net/http lifts the read
// deadline once the body is read, so it never cuts a long response.
func withDeadlines(h http.Handler, write time.Duration) http.Handler {
	if write <= 0 {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(&deadlineWriter{ResponseWriter: w, rc: http.NewResponseController(w), d: write}, r)
	})
}

// deadlineWriter gives each Write and Flush d to reach the client.
type deadlineWriter struct {
	http.ResponseWriter
	rc *http.ResponseController
	d  time.Duration
}

func (w *deadlineWriter) Write(p []byte) (int, error) {
	_ = w.rc.SetWriteDeadline(time.Now().Add(w.d))
	return w.ResponseWriter.Write(p)
}

func (w *deadlineWriter) Flush() {
	_ = w.rc.SetWriteDeadline(time.Now().Add(w.d))
	_ = w.rc.Flush()
}

// Unwrap lets http.ResponseController reach the connection.
func (w *deadlineWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
