import CSlirp

#if canImport(Glibc)
  import Glibc
#endif

/// libslirp's event loop, run on the user network's own thread: every libslirp call happens
/// here, so libslirp (which is not thread-safe) only ever sees this thread.
///
/// One round: hand libslirp the guest frames `UserNetwork.Channel` collected (`slirp_input`), ask
/// it which sockets to watch and how long it may sleep (`slirp_pollfds_fill`), `poll` those and
/// the channel's wake-up pipe until the earliest of that and the next libslirp timer, let it
/// handle what happened (`slirp_pollfds_poll`), then fire the timers that fell due. Frames libslirp
/// sends toward the guest (`send_packet`) go into the channel's `FrameInbox`.
final class SlirpEventLoop {
  private let channel: UserNetwork.Channel
  private var slirp: OpaquePointer?
  private let callbacks: UnsafeMutablePointer<SlirpCb>
  /// The descriptors of the current round: the wake-up pipe first, then libslirp's.
  fileprivate var pollDescriptors: [pollfd] = []
  /// libslirp's timers (created and freed through its callbacks).
  fileprivate var timers: [Timer] = []
  /// Guest errors libslirp reported (malformed packets): counted, not logged.
  fileprivate var guestErrors: UInt64 = 0

  /// One libslirp timer: either an identifier for `slirp_handle_timer` (libslirp 4.7's
  /// `timer_new_opaque`) or a callback (`timer_new`), and its expiry in milliseconds of
  /// `SlirpEventLoop.nowNanoseconds`.
  fileprivate final class Timer {
    let id: SlirpTimerId?
    let callback: SlirpTimerCb?
    let callbackOpaque: UnsafeMutableRawPointer?
    var expiryMilliseconds: Int64?
    init(id: SlirpTimerId?, callback: SlirpTimerCb?, callbackOpaque: UnsafeMutableRawPointer?) {
      self.id = id
      self.callback = callback
      self.callbackOpaque = callbackOpaque
    }
  }

  init(channel: UserNetwork.Channel) {
    self.channel = channel
    callbacks = .allocate(capacity: 1)
    callbacks.initialize(to: SlirpEventLoop.makeCallbacks())
  }

  deinit {
    callbacks.deinitialize(count: 1)
    callbacks.deallocate()
  }

  /// The host's monotonic clock, which libslirp's timers count in.
  static func nowNanoseconds() -> Int64 {
    var t = timespec()
    clock_gettime(CLOCK_MONOTONIC, &t)
    return Int64(t.tv_sec) * 1_000_000_000 + Int64(t.tv_nsec)
  }

  private static func inAddr(_ a: IPv4Address) -> in_addr { in_addr(s_addr: a.value.bigEndian) }

  /// Creates the libslirp instance and its forwards; returns an error line, or nil when all is up.
  func start(forwards: [PortForward]) -> String? {
    var config = SlirpConfig()
    config.version = 4
    config.restricted = 0
    config.in_enabled = true
    config.vnetwork = Self.inAddr(UserNetworkAddresses.network)
    config.vnetmask = Self.inAddr(UserNetworkAddresses.netmask)
    config.vhost = Self.inAddr(UserNetworkAddresses.host)
    config.in6_enabled = false
    config.vdhcp_start = Self.inAddr(UserNetworkAddresses.guest)
    config.vnameserver = Self.inAddr(UserNetworkAddresses.nameServer)
    config.if_mtu = 0  // libslirp's default, 1500
    config.if_mru = 0
    // The guest reaches the host's 127.0.0.1 through 10.0.2.2.
    config.disable_host_loopback = false
    config.enable_emu = false
    config.disable_dns = false
    config.disable_dhcp = false
    let opaque = Unmanaged.passUnretained(self).toOpaque()
    guard let instance = slirp_new(&config, callbacks, opaque) else {
      return "user network: libslirp could not start"
    }
    slirp = instance
    for f in forwards {
      errno = 0
      let r = slirp_add_hostfwd(
        instance, f.transport == .udp ? 1 : 0, Self.inAddr(f.hostAddress), Int32(f.hostPort),
        Self.inAddr(f.guestAddress), Int32(f.guestPort))
      if r != 0 {
        let reason =
          errno != 0 ? String(cString: strerror(errno)) : "the port is in use or the address is not the host's"
        return
          "--net user,hostfwd=\(f): cannot listen on \(f.hostAddress):\(f.hostPort) (\(f.transport.rawValue)): \(reason)"
      }
    }
    return nil
  }

  /// Runs rounds until the channel asks it to stop.
  func run() {
    guard let slirp else { return }
    let opaque = Unmanaged.passUnretained(self).toOpaque()
    while true {
      let (frames, stop) = channel.take()
      if stop { return }
      for frame in frames {
        frame.withUnsafeBufferPointer { slirp_input(slirp, $0.baseAddress, Int32($0.count)) }
      }
      pollDescriptors.removeAll(keepingCapacity: true)
      pollDescriptors.append(pollfd(fd: channel.readEnd, events: Int16(POLLIN), revents: 0))
      var timeout: UInt32 = 1000
      slirp_pollfds_fill(slirp, &timeout, SlirpEventLoop.addPoll, opaque)
      let now = Self.nowNanoseconds() / 1_000_000
      for t in timers {
        if let e = t.expiryMilliseconds { timeout = min(timeout, UInt32(clamping: max(0, e - now))) }
      }
      let ready = pollDescriptors.withUnsafeMutableBufferPointer {
        poll($0.baseAddress, nfds_t($0.count), Int32(clamping: timeout))
      }
      let failed = ready < 0 && errno != EINTR
      if ready < 0 {
        for i in pollDescriptors.indices { pollDescriptors[i].revents = 0 }
      }
      slirp_pollfds_poll(slirp, failed ? 1 : 0, SlirpEventLoop.revents, opaque)
      if pollDescriptors.first.map({ $0.revents & Int16(POLLIN) != 0 }) ?? false { channel.drainPipe() }
      fireTimers(slirp)
    }
  }

  private func fireTimers(_ slirp: OpaquePointer) {
    let now = Self.nowNanoseconds() / 1_000_000
    // A timer may re-arm or free timers from its callback: walk a copy.
    for t in timers {
      guard let e = t.expiryMilliseconds, e <= now else { continue }
      t.expiryMilliseconds = nil
      if let id = t.id {
        slirp_handle_timer(slirp, id, t.callbackOpaque)
      } else if let callback = t.callback {
        callback(t.callbackOpaque)
      }
    }
  }

  /// Shuts libslirp down (closes its sockets and listeners).
  func close() {
    if let slirp { slirp_cleanup(slirp) }
    slirp = nil
    for t in timers { Unmanaged.passUnretained(t).release() }
    timers.removeAll()
  }

  // MARK: libslirp's callbacks (all on this thread, inside libslirp calls)

  private static func loop(_ opaque: UnsafeMutableRawPointer?) -> SlirpEventLoop? {
    opaque.map { Unmanaged<SlirpEventLoop>.fromOpaque($0).takeUnretainedValue() }
  }

  private static let addPoll: SlirpAddPollCb = { fd, events, opaque in
    guard let loop = SlirpEventLoop.loop(opaque) else { return -1 }
    var e: Int16 = 0
    if events & Int32(SLIRP_POLL_IN) != 0 { e |= Int16(POLLIN) }
    if events & Int32(SLIRP_POLL_OUT) != 0 { e |= Int16(POLLOUT) }
    if events & Int32(SLIRP_POLL_PRI) != 0 { e |= Int16(POLLPRI) }
    if events & Int32(SLIRP_POLL_ERR) != 0 { e |= Int16(POLLERR) }
    if events & Int32(SLIRP_POLL_HUP) != 0 { e |= Int16(POLLHUP) }
    loop.pollDescriptors.append(pollfd(fd: fd, events: e, revents: 0))
    return Int32(loop.pollDescriptors.count - 1)
  }

  private static let revents: SlirpGetREventsCb = { index, opaque in
    guard let loop = SlirpEventLoop.loop(opaque), index >= 0, Int(index) < loop.pollDescriptors.count else { return 0 }
    let r = loop.pollDescriptors[Int(index)].revents
    var e: Int32 = 0
    if r & Int16(POLLIN) != 0 { e |= Int32(SLIRP_POLL_IN) }
    if r & Int16(POLLOUT) != 0 { e |= Int32(SLIRP_POLL_OUT) }
    if r & Int16(POLLPRI) != 0 { e |= Int32(SLIRP_POLL_PRI) }
    if r & Int16(POLLERR) != 0 { e |= Int32(SLIRP_POLL_ERR) }
    if r & Int16(POLLHUP) != 0 { e |= Int32(SLIRP_POLL_HUP) }
    return e
  }

  private static func makeCallbacks() -> SlirpCb {
    var cb = SlirpCb()
    cb.send_packet = { buffer, length, opaque in
      guard let loop = SlirpEventLoop.loop(opaque), let buffer else { return -1 }
      let frame = [UInt8](UnsafeRawBufferPointer(start: buffer, count: length))
      loop.channel.inbox.push(frame)  // a full inbox drops it: TCP retransmits
      return length
    }
    cb.guest_error = { _, opaque in SlirpEventLoop.loop(opaque)?.guestErrors &+= 1 }
    cb.clock_get_ns = { _ in SlirpEventLoop.nowNanoseconds() }
    cb.timer_new = { callback, callbackOpaque, opaque in
      guard let loop = SlirpEventLoop.loop(opaque) else { return nil }
      let t = SlirpEventLoop.Timer(id: nil, callback: callback, callbackOpaque: callbackOpaque)
      loop.timers.append(t)
      return Unmanaged.passRetained(t).toOpaque()
    }
    cb.timer_new_opaque = { id, callbackOpaque, opaque in
      guard let loop = SlirpEventLoop.loop(opaque) else { return nil }
      let t = SlirpEventLoop.Timer(id: id, callback: nil, callbackOpaque: callbackOpaque)
      loop.timers.append(t)
      return Unmanaged.passRetained(t).toOpaque()
    }
    cb.timer_free = { timer, opaque in
      guard let loop = SlirpEventLoop.loop(opaque), let timer else { return }
      let t = Unmanaged<SlirpEventLoop.Timer>.fromOpaque(timer)
      loop.timers.removeAll { $0 === t.takeUnretainedValue() }
      t.release()
    }
    cb.timer_mod = { timer, expiry, _ in
      guard let timer else { return }
      Unmanaged<SlirpEventLoop.Timer>.fromOpaque(timer).takeUnretainedValue().expiryMilliseconds = expiry
    }
    cb.register_poll_fd = { _, _ in }
    cb.unregister_poll_fd = { _, _ in }
    cb.notify = { _ in }  // every round asks libslirp afresh what to poll
    cb.init_completed = { _, _ in }
    return cb
  }
}
