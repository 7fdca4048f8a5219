package io.pagepool.forwarder;

import io.netty.channel.IoHandlerFactory;
import io.netty.channel.epoll.Epoll;
import io.netty.channel.epoll.EpollDatagramChannel;
import io.netty.channel.epoll.EpollIoHandler;
import io.netty.channel.nio.NioIoHandler;
import io.netty.channel.socket.DatagramChannel;
import io.netty.channel.socket.nio.NioDatagramChannel;
import io.netty.channel.uring.IoUring;
import io.netty.channel.uring.IoUringDatagramChannel;
import io.netty.channel.uring.IoUringIoHandler;
import java.util.function.Supplier;

/** The Netty transports the forwarder runs on: Linux's epoll and io_uring, and the JDK's NIO. */
public enum Transport {
    EPOLL(EpollIoHandler::newFactory, EpollDatagramChannel.class),
    IO_URING(IoUringIoHandler::newFactory, IoUringDatagramChannel.class),
    NIO(NioIoHandler::newFactory, NioDatagramChannel.class);

    private final Supplier<IoHandlerFactory> ioHandler;
    private final Class<? extends DatagramChannel> datagramChannel;

    Transport(Supplier<IoHandlerFactory> ioHandler, Class<? extends DatagramChannel> datagramChannel) {
        this.ioHandler = ioHandler;
        this.datagramChannel = datagramChannel;
    }

    IoHandlerFactory newIoHandlerFactory() {
        return ioHandler.get();
    }

    Class<? extends DatagramChannel> datagramChannel() {
        return datagramChannel;
    }

    /** Whether this machine can run it (the native transports need Linux and their native library). */
    public boolean isAvailable() {
        switch (this) {
            case EPOLL:
                return Epoll.isAvailable();
            case IO_URING:
                return IoUring.isAvailable();
            default:
                return true;
        }
    }

    /** Why it cannot run here, or null if it can. */
    public String unavailabilityCause() {
        Throwable cause = this == EPOLL ? Epoll.unavailabilityCause()
                : this == IO_URING ? IoUring.unavailabilityCause() : null;
        return cause == null ? null : String.valueOf(cause.getMessage());
    }

    /** epoll where it runs, else NIO: what a Linux server would pick. */
    public static Transport best() {
        return EPOLL.isAvailable() ? EPOLL : NIO;
    }
}
