import Foundation
import KVMEngine
import TestHostSupport
import Testing
import VMM

#if canImport(Glibc)
  import Glibc
#endif

/// Whole machines under kvm: guests talking to the VMM's devices through the run loop.
@Suite struct VirtualMachineTests {
  @Test(.requires(.kvm)) func serialOutputReachesTheConsoleAndDebugExitSetsTheStatus() throws {
    let engine = try KVMTestSupport.engine()
    let out = OutputCapture()
    let vm = try KVMTestSupport.virtualMachine(engine, image: TestGuestImages.serialHello, capture: out)
    let outcome = vm.run()
    #expect(out.text == "hello from the test guest\n")
    #expect(outcome.reason == .debugExit(value: 0x10))
    #expect(outcome.exitStatus == 0x21)
    // Statistics: one OUT per character plus the exit, one LSR poll (IN) per character at least.
    let stats = outcome.statistics
    let outs = try #require(stats.reasons.first { $0.reason == "io-out" })
    let ins = try #require(stats.reasons.first { $0.reason == "io-in" })
    #expect(outs.count == 27)
    #expect(ins.count >= 26)
    #expect(stats.totalExits == stats.reasons.reduce(0) { $0 + $1.count })
    #expect(outs.p50Nanoseconds <= outs.p99Nanoseconds && outs.p99Nanoseconds <= outs.maxNanoseconds)
    #expect(outs.minNanoseconds <= outs.p50Nanoseconds)
    #expect(stats.wallNanoseconds >= stats.guestNanoseconds)
  }

  @Test(.requires(.kvm)) func hostInputReachesTheGuestThroughTheUART() throws {
    let engine = try KVMTestSupport.engine()
    let out = OutputCapture()
    let vm = try KVMTestSupport.virtualMachine(engine, image: TestGuestImages.echo, capture: out)
    vm.input.push(Array("a".utf8))  // queued before the run starts
    let box = UncheckedBox(vm)
    let t = Thread {
      // The pause only makes it likely that the guest is already polling; the guest polls until
      // the bytes come, so the outcome is the same whenever they are queued.
      usleep(50_000)
      // What the stdin reader thread does: queue, then kick the vCPU.
      box.value.input.push(Array("bc".utf8))
      box.value.vcpus[0].kick()
    }
    t.start()
    let outcome = vm.run()
    #expect(outcome.reason == .debugExit(value: 1))
    #expect(out.text == "ABC")
  }

  @Test(.requires(.kvm)) func mmioExitsReachTheMMIOBus() throws {
    let engine = try KVMTestSupport.engine()
    let out = OutputCapture()
    let vm = try KVMTestSupport.virtualMachine(engine, image: TestGuestImages.ioAndMMIO, capture: out)
    let device = RecordingMMIODevice(answer: 0x1122_3344_5566_7788)
    try vm.mmioBus.register(device, base: 0xD000_0000, size: 0x1000)
    let ports = RecordingPortDevice(answer: 0xCAFE_F00D)
    try vm.portBus.register(ports, ports: 0x510...0x515)
    let outcome = vm.run()
    // The guest HLTs with IF=0 before its debug exit: the VMM must end it as halted forever.
    guard case .haltedForever(let report) = outcome.reason else {
      Issue.record("expected haltedForever, got \(outcome.reason)")
      return
    }
    #expect(outcome.exitStatus == 8)
    #expect(report.registers != nil)
    #expect(device.writes.map(\.offset) == [0x0, 0x10])
    #expect(device.writes.map(\.value) == [0x1234_5678, 0x1122_3344_5566_7788])
    #expect(device.reads == [0x8])
    #expect(ports.writes.first?.value == 0xAB)
    #expect(ports.writes.contains { $0.port == 0x512 && $0.value == 0xCAFE_F00D })
    #expect(ports.writes.filter { $0.port == 0x513 }.map(\.value) == "Triv".utf8.map(UInt32.init))
    #expect(ports.writes.contains { $0.port == 0x515 && $0.value == 0xF00D_F00D })
  }

  @Test(.requires(.kvm)) func tripleFaultEndsWithStatus6AndAReport() throws {
    let engine = try KVMTestSupport.engine()
    let vm = try KVMTestSupport.virtualMachine(engine, image: TestGuestImages.tripleFault, capture: OutputCapture())
    let outcome = vm.run()
    guard case .shutdown(.tripleFault, let report) = outcome.reason else {
      Issue.record("expected a triple fault, got \(outcome.reason)")
      return
    }
    #expect(outcome.exitStatus == 6)
    #expect(report.specialRegisters?.idt.limit == 0)
    #expect(outcome.reason.description.contains("triple fault"))
  }

  @Test(.requires(.kvm)) func internalErrorEndsWithStatus4AndAReport() throws {
    let engine = try KVMTestSupport.engine()
    let vm = try KVMTestSupport.virtualMachine(engine, image: TestGuestImages.mmioJump, capture: OutputCapture())
    let outcome = vm.run()
    guard case .internalError(let report) = outcome.reason else {
      Issue.record("expected an internal error, got \(outcome.reason)")
      return
    }
    #expect(outcome.exitStatus == 4)
    #expect(report.reason.contains("KVM_EXIT_INTERNAL_ERROR"))
    #expect(report.registers?.rip == 0xD000_0000)
    #expect(report.specialRegisters != nil)
    #expect(report.bytesAtRIP.isEmpty)  // nothing to read: RIP is in the MMIO hole
  }

  @Test(.requires(.kvm)) func pitInterruptsThroughThePICAreCountedByTheGuest() throws {
    let engine = try KVMTestSupport.engine()
    let ports = RecordingPortDevice(answer: 0)
    // 50 Hz, 10 ticks: 200 ms of guest time spent mostly in HLT.
    let vm = try KVMTestSupport.virtualMachine(engine, image: TestGuestImages.timer, capture: OutputCapture()) {
      try $0.write(UInt16(23864), at: 0x9000)
      try $0.write(UInt32(10), at: 0x9004)
    }
    try vm.portBus.register(ports, ports: 0x510...0x510)
    let cpuBefore = threadCPUNanoseconds()
    let outcome = vm.run()
    let cpu = threadCPUNanoseconds() - cpuBefore
    #expect(outcome.reason == .powerOff)
    #expect(outcome.exitStatus == 0)
    // The guest reports its tick count once it has seen 10; a tick that lands between its wake-up
    // and its CLI (a loaded host) is counted too, so the count is at least 10.
    #expect(ports.writes.count == 1 && (ports.writes.first?.value ?? 0) >= 10, "\(ports.writes)")
    #expect(vm.pit?.deliveredInterrupts ?? 0 >= 10)
    let wall = outcome.statistics.wallNanoseconds
    #expect(wall >= 180_000_000, "10 ticks at 50 Hz take about 200 ms")
    // An idle guest must not spin: the vCPU thread (this one) used far less CPU than the wall time.
    // Thread CPU time, so tests running in parallel do not count.
    #expect(cpu < wall / 2, "cpu \(cpu) ns for \(wall) ns of wall time")
    #expect((outcome.statistics.reasons.first { $0.reason == "hlt" }?.count ?? 0) >= 10)
  }

  @Test(.requires(.kvm, .kvmInKernelIRQChip)) func inKernelIRQChipDeliversThePITToo() throws {
    let engine = try KVMTestSupport.engine()
    let ports = RecordingPortDevice(answer: 0)
    let vm = try KVMTestSupport.virtualMachine(
      engine, image: TestGuestImages.timer, capture: OutputCapture(), irqchip: .kernel
    ) {
      try $0.write(UInt16(1193), at: 0x9000)  // 1 kHz
      try $0.write(UInt32(5), at: 0x9004)
    }
    try vm.portBus.register(ports, ports: 0x510...0x510)
    #expect(vm.pic == nil && vm.pit == nil)
    let outcome = vm.run()
    #expect(outcome.reason == .powerOff)
    // At least 5: KVM's PIT re-injects ticks a loaded host delayed, and one may land before the
    // guest's CLI.
    #expect(ports.writes.count == 1 && (ports.writes.first?.value ?? 0) >= 5, "\(ports.writes)")
  }

  @Test(.requires(.kvm)) func builtInDemoGuestCountsItsTimerInterruptsAndPowersOff() throws {
    let engine = try KVMTestSupport.engine()
    let out = OutputCapture()
    let mem = try GuestMemory(ramSize: 16 << 20)
    let boot = try DemoGuest.load(into: mem)
    let vm = try Machine(
      memory: mem, boot: boot, engine: engine,
      configuration: MachineConfiguration(consoleCapture: { out.append($0) }, timeoutSeconds: 20))
    let outcome = vm.run()
    #expect(outcome.exitStatus == 0)
    #expect(out.text.hasPrefix("Trivisor demo guest"))
    #expect(out.text.contains("timer interrupts: 20 of 20"))
  }

  @Test(.requires(.kvm)) func keyboardControllerResetStopsWithStatus14() throws {
    let engine = try KVMTestSupport.engine()
    // mov al, 0xfe; out 0x64, al; jmp $  (the i8042 "pulse reset line" command)
    let vm = try KVMTestSupport.virtualMachine(
      engine, image: [0xB0, 0xFE, 0xE6, 0x64, 0xEB, 0xFE], capture: OutputCapture())
    let outcome = vm.run()
    #expect(outcome.reason == .reset)
    #expect(outcome.exitStatus == 14)
  }

  @Test(.requires(.kvm)) func timeoutStopsARunawayGuest() throws {
    let engine = try KVMTestSupport.engine()
    // Timer guest with a huge tick count: it would run for minutes.
    let vm = try KVMTestSupport.virtualMachine(
      engine, image: TestGuestImages.timer, capture: OutputCapture(), timeout: 0.2
    ) {
      try $0.write(UInt16(11932), at: 0x9000)
      try $0.write(UInt32(1_000_000), at: 0x9004)
    }
    let outcome = vm.run()
    #expect(outcome.exitStatus == 10)
  }

  @Test(.requires(.kvm)) func requestStopFromAnotherThreadKicksARunningGuest() throws {
    let engine = try KVMTestSupport.engine()
    // The bench port loop with a near-endless count keeps the vCPU busy in the guest.
    let vm = try KVMTestSupport.virtualMachine(engine, image: TestGuestImages.spin, capture: OutputCapture())
    let box = UncheckedBox(vm)
    let t = Thread {
      // Usually lands mid-run; a request made before the run starts is kept and ends it at once,
      // so the outcome does not depend on when this thread runs.
      usleep(100_000)
      box.value.requestStop(.hostSignal(SIGTERM))
    }
    t.start()
    let outcome = vm.run()
    #expect(outcome.reason == .hostSignal(SIGTERM))
    #expect(outcome.exitStatus == 12)
  }
}

struct UncheckedBox<T>: @unchecked Sendable {
  let value: T
  init(_ value: T) { self.value = value }
}

func threadCPUNanoseconds() -> UInt64 {
  var ts = timespec()
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts)
  return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

final class RecordingMMIODevice: MMIODevice {
  let answer: UInt64
  var writes: [(offset: UInt64, value: UInt64)] = []
  var reads: [UInt64] = []
  init(answer: UInt64) { self.answer = answer }
  func read(offset: UInt64, size: Int) -> UInt64 {
    reads.append(offset)
    return answer
  }
  func write(offset: UInt64, size: Int, value: UInt64) { writes.append((offset, value)) }
}

final class RecordingPortDevice: PortIODevice {
  let answer: UInt32
  var writes: [(port: UInt16, value: UInt32)] = []
  init(answer: UInt32) { self.answer = answer }
  func read(port: UInt16, size: Int) -> UInt32 { port == 0x514 ? 0xF00D : answer }
  func write(port: UInt16, size: Int, value: UInt32) { writes.append((port, value)) }
}
