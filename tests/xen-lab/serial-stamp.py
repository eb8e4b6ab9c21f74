#!/usr/bin/env python3
"""Follow an emulator's serial output file and print each line prefixed with the wall seconds
since this started ("[  12.3] line"), the format check.py reads; ends when process PID is gone.

    serial-stamp.py FILE PID
"""
import os
import sys
import time


def alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except OSError:
        return False


def main():
    path, pid = sys.argv[1], int(sys.argv[2])
    t0 = time.time()
    pending = b""
    with open(path, "rb") as f:
        while True:
            chunk = f.read(65536)
            if chunk:
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for l in lines:
                    text = l.decode("utf-8", "replace").rstrip("\r")
                    sys.stdout.write("[%7.1f] %s\n" % (time.time() - t0, text))
                sys.stdout.flush()
                continue
            if not alive(pid):
                break
            time.sleep(0.2)
        rest = pending + f.read()
        for l in rest.split(b"\n"):
            if l:
                sys.stdout.write("[%7.1f] %s\n" % (time.time() - t0, l.decode("utf-8", "replace").rstrip("\r")))
    sys.stdout.write("[%7.1f] ## emulator exited\n" % (time.time() - t0))


if __name__ == "__main__":
    main()
