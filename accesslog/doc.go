// Package accesslog owns portico's access log: what one line says (Record
// for a request, with its request id, RequestID, made by RequestIDs), how
// it is encoded (JSONHandler: the bytes slog.JSONHandler would write, at a
// fraction of the cost, held to it by a differential test and a fuzz
// target; Write picks the direct path when it can), and where it goes
// (Sink: lines batched for at most 100 ms or 64 KiB, never torn, retargeted
// in place when the file is reopened, so a logger held across a reopen
// writes to the new file).
//
// Which requests are logged and with what is the caller's (proxy). The
// package holds no state at package level: a Sink owns its buffer, its
// file and its flush timer; a RequestIDs owns its prefix and counter.
package accesslog
