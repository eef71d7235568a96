/// CPU exceptions: demand paging and registered #DE resumption for ring 3, otherwise the task is
/// killed and reported; an exception in ring 0 is a kernel panic.
enum Exceptions {
  static let divideError = 0
  static let pageFault = 14

  static func handleUserException(_ frame: UnsafeMutablePointer<TrapFrame>) {
    let vector = Int(frame.pointee.vector)
    if vector == pageFault && frame.pointee.rip == KernelLayout.syscallEntry {
      SystemCalls.completeFaultedSyscall(frame)
      return
    }
    if vector == pageFault {
      let address = Platform.readFaultAddress()
      let notPresent = frame.pointee.errorCode & 1 == 0
      if notPresent, address >= UserWindow.demandAreaStart, AddressSpace.isInWindow(address),
        Scheduler.mapDemandPage(address & ~(UserWindow.pageSize - 1))
      {
        return
      }
    }
    if vector == divideError, let resume = Scheduler.divideErrorResume() {
      frame.pointee.rip = resume
      return
    }
    Console.lock()
    Console.write("KILLED pid=")
    Console.write(decimal: Scheduler.currentPID)
    Console.write(" vector=")
    Console.write(decimal: vector)
    Console.write(" (")
    Console.write(name(vector))
    Console.write(") rip=")
    Console.write(hex: frame.pointee.rip)
    Console.write(" error=")
    Console.write(hex: frame.pointee.errorCode)
    if vector == pageFault {
      Console.write(" address=")
      Console.write(hex: Platform.readFaultAddress())
    }
    Console.newline()
    Console.unlock()
    Scheduler.exitCurrent(status: 128 + vector, killedBy: vector)
  }

  static func kernelPanic(_ frame: UnsafeMutablePointer<TrapFrame>) -> Never {
    Console.lock()  // kept: the machine powers off
    Console.write("PANIC kernel exception vector=")
    Console.write(decimal: Int(frame.pointee.vector))
    Console.write(" (")
    Console.write(name(Int(frame.pointee.vector)))
    Console.write(") rip=")
    Console.write(hex: frame.pointee.rip)
    Console.write(" error=")
    Console.write(hex: frame.pointee.errorCode)
    Console.write(" cr2=")
    Console.write(hex: Platform.readFaultAddress())
    Console.write(" cpu=")
    Console.write(decimal: PerCPU.current.pointee.index)
    Console.newline()
    Platform.powerOff(status: 3)
  }

  static func name(_ vector: Int) -> StaticString {
    switch vector {
    case 0: "#DE divide error"
    case 1: "#DB debug"
    case 2: "NMI"
    case 3: "#BP breakpoint"
    case 4: "#OF overflow"
    case 5: "#BR bound range"
    case 6: "#UD invalid opcode"
    case 7: "#NM device not available"
    case 8: "#DF double fault"
    case 10: "#TS invalid TSS"
    case 11: "#NP segment not present"
    case 12: "#SS stack fault"
    case 13: "#GP general protection"
    case 14: "#PF page fault"
    case 16: "#MF x87 error"
    case 17: "#AC alignment check"
    case 18: "#MC machine check"
    case 19: "#XM SIMD error"
    default: "exception"
    }
  }
}
