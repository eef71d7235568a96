/// A device reached through x86 port I/O (`IN`/`OUT`). Ports are absolute; `size` is 1, 2 or 4.
///
/// Devices are driven from the vCPU thread only. Input from other threads (the host terminal) goes
/// through a thread-safe queue that the run loop drains, never into a device directly.
public protocol PortIODevice: AnyObject {
  /// Value read from `port`. Bits above `size` bytes are ignored by the bus.
  func read(port: UInt16, size: Int) -> UInt32
  func write(port: UInt16, size: Int, value: UInt32)
  /// Whether an access to `port` may be answered as a lightweight exit (`LightweightExitHandler`):
  /// it raises or lowers no interrupt line, moves no timer deadline, changes no machine-control
  /// line and writes no output, so the vCPU can go on without the run loop. False by default.
  /// The bus asks once per port when the device is registered: the answer may not depend on the
  /// device's state.
  func isLightweight(port: UInt16, isWrite: Bool) -> Bool
}

extension PortIODevice {
  /// By default every access takes the run loop.
  public func isLightweight(port: UInt16, isWrite: Bool) -> Bool { false }
}

/// A device reached through memory-mapped I/O. `offset` is relative to the device's base; `size` is
/// 1, 2, 4 or 8.
public protocol MMIODevice: AnyObject {
  func read(offset: UInt64, size: Int) -> UInt64
  func write(offset: UInt64, size: Int, value: UInt64)
}

/// A device with a power-on state to return to when the machine resets (the PC's RESET line).
/// Battery-backed state (CMOS RAM, the RTC) and the host side (queued host input, counters,
/// fw_cfg contents) survive a reset, as on hardware.
public protocol ResettableDevice: AnyObject {
  /// Returns the guest-visible registers to their power-on values.
  func reset()
}

/// A device whose state advances with guest time (timers). The run loop calls `advance(to:)` before
/// it enters the guest and arms a host timer for the earliest `nextDeadline`.
public protocol TimedDevice: AnyObject {
  /// Brings the device up to guest time `now` (nanoseconds), raising any interrupts that fell due.
  func advance(to now: UInt64)
  /// Guest time at which the device next needs `advance`, or nil if it is idle.
  var nextDeadline: UInt64? { get }
}

/// Where devices send interrupt requests: the userspace i8259 pair, or KVM's in-kernel irqchip.
public protocol InterruptSink: AnyObject {
  /// Drives ISA interrupt line `line` (0...15) to `level`.
  func setIRQ(_ line: Int, level: Bool)
}

/// One ISA interrupt line as a device sees it.
public struct InterruptLine {
  /// The interrupt controller the line is wired to.
  public let sink: any InterruptSink
  /// The IRQ number (0-15).
  public let line: Int
  /// IRQ `line` of `sink`.
  public init(sink: any InterruptSink, line: Int) {
    self.sink = sink
    self.line = line
  }
  /// Drives the line high (an edge on edge-triggered lines).
  public func raise() { sink.setIRQ(line, level: true) }
  /// Drives the line low.
  public func lower() { sink.setIRQ(line, level: false) }
  /// An edge: raise then lower (what the PIT and the UART do in edge-triggered mode).
  public func pulse() {
    raise()
    lower()
  }
}

/// The source of guest time in nanoseconds: host monotonic time by default, or a clock driven by
/// the instruction count for deterministic runs.
public protocol GuestClock: AnyObject {
  var nanoseconds: UInt64 { get }
}
