# In each network namespace named on the command line (/run/netns/NAME):
# loopback up, a TCP connection to itself closed (its TIME_WAIT sockets are
# the teardown's to purge) and a UDP socket closed. One process, setns into
# each, rather than one `ip netns exec` per namespace.
import ctypes, fcntl, os, socket, struct, sys

CLONE_NEWNET = 0x40000000
SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 1
libc = ctypes.CDLL(None, use_errno=True)
for name in sys.argv[1:]:
    fd = os.open("/run/netns/" + name, os.O_RDONLY)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        sys.exit("setns " + name + ": " + os.strerror(ctypes.get_errno()))
    os.close(fd)
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    flags = struct.unpack("16sH14x", fcntl.ioctl(udp, SIOCGIFFLAGS, struct.pack("16sH14x", b"lo", 0)))[1]
    fcntl.ioctl(udp, SIOCSIFFLAGS, struct.pack("16sH14x", b"lo", flags | IFF_UP))
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    cli = socket.create_connection(srv.getsockname())
    conn, _ = srv.accept()
    for s in (cli, conn, srv, udp):
        s.close()
