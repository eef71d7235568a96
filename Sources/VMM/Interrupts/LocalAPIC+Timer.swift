/// The local APIC's timer: one-shot and periodic modes count guest nanoseconds (a 1 GHz bus
/// clock) divided by the divide configuration; TSC-deadline mode fires once when guest time
/// reaches the deadline the runner converted from the guest's TSC (`armTSCDeadline`). A write to
/// the LVT timer that changes its mode disarms the timer (`writeLVT`).
extension LocalAPIC {

  /// LVT timer modes (bits 18:17).
  enum TimerMode { case oneShot, periodic, tscDeadline }

  var timerMode: TimerMode {
    switch (lvt[LVT.timer] >> 17) & 3 {
    case 1: return .periodic
    case 2: return .tscDeadline
    default: return .oneShot
    }
  }

  /// Guest nanoseconds per timer tick: the divide configuration (bits 0, 1, 3) of a 1 GHz clock.
  var tickNanoseconds: UInt64 {
    let code = (divide & 3) | ((divide >> 1) & 4)
    return code == 7 ? 1 : 2 << UInt64(code)
  }

  func currentCount(now: UInt64) -> UInt32 {
    guard initialCount > 0, timerMode != .tscDeadline else { return 0 }
    let ticks = (now &- timerStart) / tickNanoseconds
    if timerMode == .periodic { return initialCount - UInt32(ticks % UInt64(initialCount)) }
    return ticks >= UInt64(initialCount) ? 0 : initialCount - UInt32(ticks)
  }

  /// IA32_TSC_DEADLINE as RDMSR reads it: the armed deadline, 0 once it fired or was disarmed
  /// (always 0 outside TSC-deadline mode).
  public var armedTSCDeadline: UInt64 { lock.locked { timerMode == .tscDeadline ? tscDeadline : 0 } }

  /// WRMSR IA32_TSC_DEADLINE: arms the timer for guest TSC `deadline`, which guest time reaches
  /// at `due` (the caller converts with the vCPU's TSC); 0 disarms. Ignored outside TSC-deadline
  /// mode.
  public func armTSCDeadline(_ deadline: UInt64, due: UInt64) {
    lock.locked {
      guard timerMode == .tscDeadline else { return }
      tscDeadline = deadline
      tscDeadlineDue = due
    }
  }

  /// Guest time of the next timer expiry, when the timer is armed (`TimedDevice`).
  public var nextDeadline: UInt64? {
    lock.locked {
      if timerMode == .tscDeadline { return tscDeadline != 0 ? tscDeadlineDue : nil }
      guard initialCount > 0 else { return nil }
      return timerStart &+ UInt64(initialCount) &* tickNanoseconds
    }
  }

  /// Fires the timer if it expired by `now`: the LVT timer vector unless masked; a periodic timer
  /// reloads, a one-shot or TSC-deadline one stops (`TimedDevice`).
  public func advance(to now: UInt64) {
    let fire: UInt8? = lock.locked {
      if timerMode == .tscDeadline {
        guard tscDeadline != 0, now >= tscDeadlineDue else { return nil }
        tscDeadline = 0
      } else {
        guard initialCount > 0 else { return nil }
        let period = UInt64(initialCount) &* tickNanoseconds
        guard now &- timerStart >= period else { return nil }
        if timerMode == .periodic {
          timerStart &+= (now &- timerStart) / period * period
        } else {
          initialCount = 0
        }
      }
      return lvt[LVT.timer] & LVT.masked == 0 ? UInt8(lvt[LVT.timer] & 0xFF) : nil
    }
    if let fire { accept(vector: fire) }
  }
}
