// Command ferretdb-launcher starts FerretDB (MongoDB wire protocol over SQLite) on
// 127.0.0.1, for the MongoStore tests. It imports FerretDB's embeddable package because
// `go install` of FerretDB's own command panics on a missing version file.
//
// It prints one line, `MONGODB_URI=mongodb://127.0.0.1:PORT/`, once the server accepts
// connections, and runs until SIGINT/SIGTERM, then removes its temporary data directory.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/FerretDB/FerretDB/ferretdb"
)

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func main() {
	port := flag.Int("port", 0, "TCP port on 127.0.0.1 (0: a free one)")
	dir := flag.String("dir", "", "SQLite data directory (default: a new temporary one, removed on exit)")
	verbose := flag.Bool("verbose", false, "log FerretDB's own messages to stderr")
	flag.Parse()

	if *port == 0 {
		p, err := freePort()
		if err != nil {
			fmt.Fprintln(os.Stderr, "ferretdb-launcher: no free port:", err)
			os.Exit(1)
		}
		*port = p
	}
	dataDir := *dir
	if dataDir == "" {
		d, err := os.MkdirTemp("", "wotd-ferretdb-")
		if err != nil {
			fmt.Fprintln(os.Stderr, "ferretdb-launcher:", err)
			os.Exit(1)
		}
		dataDir = d
		defer os.RemoveAll(d)
	} else if err := os.MkdirAll(dataDir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, "ferretdb-launcher:", err)
		os.Exit(1)
	}

	var logOut io.Writer = io.Discard
	if *verbose {
		logOut = os.Stderr
	}
	addr := fmt.Sprintf("127.0.0.1:%d", *port)
	f, err := ferretdb.New(&ferretdb.Config{
		Listener:  ferretdb.ListenerConfig{TCP: addr},
		Logger:    slog.New(slog.NewTextHandler(logOut, nil)),
		Handler:   "sqlite",
		SQLiteURL: "file:" + filepath.ToSlash(dataDir) + "/",
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "ferretdb-launcher:", err)
		os.Exit(1)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()

	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			fmt.Fprintln(os.Stderr, "ferretdb-launcher: server did not start listening within 30s")
			os.Exit(1)
		}
		time.Sleep(50 * time.Millisecond)
	}
	fmt.Printf("MONGODB_URI=mongodb://%s/\n", addr)

	if err := <-done; err != nil && ctx.Err() == nil {
		fmt.Fprintln(os.Stderr, "ferretdb-launcher:", err)
		os.Exit(1)
	}
}
