// A gorilla/websocket server with the keepalive of gorilla's chat example
// (examples/chat/client.go): a ping every pingPeriod from the write pump, a read
// deadline of pongWait pushed forward by each pong (SetPongHandler), writeWait
// for every write. A connection whose read deadline passes is closed without a
// close frame, as the example does.
//
// Usage: server [-ping-period D] [-pong-wait D] [-write-wait D] [-listen host:port | host port]
//
// Events go to stderr as JSON lines: {"t": CLOCK_MONOTONIC seconds, "lib":
// "gorilla", "role": "server", "event": ..., ...}.
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/gorilla/websocket"
)

var (
	pingPeriod = flag.Duration("ping-period", 54*time.Second, "send pings to the peer with this period (less than pong-wait)")
	pongWait   = flag.Duration("pong-wait", 60*time.Second, "time allowed to read the next pong from the peer")
	writeWait  = flag.Duration("write-wait", 10*time.Second, "time allowed to write a message to the peer")
	listen     = flag.String("listen", "127.0.0.1:8080", "host:port to listen on (or give host and port as arguments)")
)

var logMu sync.Mutex
var nextID int64

// monotonic reads CLOCK_MONOTONIC, the clock of Python's time.monotonic and
// Node's process.hrtime, so the events of every adapter share one time line.
func monotonic() float64 {
	var ts syscall.Timespec
	const clockMonotonic = 1
	syscall.Syscall(syscall.SYS_CLOCK_GETTIME, clockMonotonic, uintptr(unsafe.Pointer(&ts)), 0)
	return float64(ts.Sec) + float64(ts.Nsec)/1e9
}

func event(name string, fields map[string]interface{}) {
	rec := map[string]interface{}{"t": monotonic(), "lib": "gorilla", "role": "server", "event": name}
	for k, v := range fields {
		rec[k] = v
	}
	line, _ := json.Marshal(rec)
	logMu.Lock()
	os.Stderr.Write(append(line, '\n'))
	logMu.Unlock()
}

var upgrader = websocket.Upgrader{ReadBufferSize: 1024, WriteBufferSize: 1024}

type client struct {
	id        int64
	conn      *websocket.Conn
	closeOnce sync.Once
	done      chan struct{}
}

func (c *client) closeConn(cause string, code int) {
	c.closeOnce.Do(func() {
		event("close", map[string]interface{}{"conn": c.id, "cause": cause, "code": code})
		close(c.done)
		c.conn.Close()
	})
}

// readPump: the read deadline is the detector, as in the chat example.
func (c *client) readPump() {
	c.conn.SetReadDeadline(time.Now().Add(*pongWait))
	c.conn.SetPongHandler(func(string) error {
		event("pong_received", map[string]interface{}{"conn": c.id})
		c.conn.SetReadDeadline(time.Now().Add(*pongWait))
		return nil
	})
	ping := c.conn.PingHandler()
	c.conn.SetPingHandler(func(data string) error {
		event("ping_received", map[string]interface{}{"conn": c.id})
		return ping(data) // the default handler answers with a pong
	})
	for {
		_, _, err := c.conn.ReadMessage()
		if err != nil {
			var ce *websocket.CloseError
			var ne net.Error
			switch {
			case errors.As(err, &ce):
				c.closeConn("peer_close", ce.Code)
			case errors.As(err, &ne) && ne.Timeout():
				c.closeConn("timeout", websocket.CloseAbnormalClosure)
			default:
				c.closeConn("error", websocket.CloseAbnormalClosure)
			}
			return
		}
	}
}

// writePump: a ping every pingPeriod, each write bounded by writeWait.
func (c *client) writePump() {
	ticker := time.NewTicker(*pingPeriod)
	defer ticker.Stop()
	for {
		select {
		case <-c.done:
			return
		case <-ticker.C:
			c.conn.SetWriteDeadline(time.Now().Add(*writeWait))
			if err := c.conn.WriteMessage(websocket.PingMessage, nil); err != nil {
				c.closeConn("write_error", websocket.CloseAbnormalClosure)
				return
			}
			event("ping_sent", map[string]interface{}{"conn": c.id})
		}
	}
}

func serveWs(w http.ResponseWriter, r *http.Request) {
	conn, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	c := &client{id: atomic.AddInt64(&nextID, 1), conn: conn, done: make(chan struct{})}
	event("open", map[string]interface{}{"conn": c.id, "peer": r.RemoteAddr})
	go c.writePump()
	go c.readPump()
}

func main() {
	flag.Parse()
	addr := *listen
	if flag.NArg() == 2 {
		addr = net.JoinHostPort(flag.Arg(0), flag.Arg(1))
	} else if flag.NArg() != 0 {
		fmt.Fprintln(os.Stderr, "usage: server [flags] [host port]")
		os.Exit(2)
	}
	if *pingPeriod <= 0 || *pongWait <= *pingPeriod || *writeWait <= 0 {
		fmt.Fprintf(os.Stderr, "bad settings: -ping-period %v, -pong-wait %v, -write-wait %v: need 0 < ping-period < pong-wait and write-wait > 0\n", *pingPeriod, *pongWait, *writeWait)
		os.Exit(2)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Fprintf(os.Stderr, "cannot listen on %s: %v\n", addr, err)
		os.Exit(2)
	}
	event("listening", map[string]interface{}{"addr": ln.Addr().String(),
		"pingPeriod": pingPeriod.Seconds(), "pongWait": pongWait.Seconds(), "writeWait": writeWait.Seconds()})
	mux := http.NewServeMux()
	mux.HandleFunc("/", serveWs)
	if err := http.Serve(ln, mux); err != nil {
		fmt.Fprintf(os.Stderr, "serve: %v\n", err)
		os.Exit(1)
	}
}
