import Glibc
import Interpreter
import VMM

@testable import StaticTranslator

/// Hand-assembled 64-bit guests for the static translator's tests, loaded at 0x10000 (ring 0,
/// identity mapped by `SmallGuestBoot`).
enum StaticTestGuest {
  /// Where the guests are loaded.
  static let base: UInt64 = 0x10000

  /// Prints "A", calls a function f (EBX += 3) 1000 times in a loop, patches the immediate of
  /// its own next instruction from 'Y' to 'Z' and prints it, patches f's immediate from 3 to 4
  /// (code the loop ran a thousand times) and calls f once more, jumps through a computed
  /// pointer (LEA + JMP RAX) over 4 bytes of data to code discovery cannot find, prints "C\n" and
  /// exits through isa-debug-exit with BL (3004 & 0xFF: status 121).
  /// Offsets: start 0x00, loop 0x0F (call f), return site 0x14, first store 0x18, patched
  /// instruction 0x1F, second store 0x22, call f 0x29, LEA 0x2E, JMP RAX 0x35, data 0x37-0x3A,
  /// hidden 0x3B, halt 0x48, f 0x4B.
  static let selfModifyingComputedJump: [UInt8] = [
    0xBA, 0xF8, 0x03, 0x00, 0x00, 0xB0, 0x41, 0xEE, 0xB9, 0xE8, 0x03, 0x00, 0x00, 0x31, 0xDB, 0xE8, 0x37, 0x00, 0x00,
    0x00, 0xFF, 0xC9, 0x75, 0xF7, 0xC6, 0x05, 0x01, 0x00, 0x00, 0x00, 0x5A, 0xB0, 0x59, 0xEE, 0xC6, 0x05, 0x24, 0x00,
    0x00, 0x00, 0x04, 0xE8, 0x1D, 0x00, 0x00, 0x00, 0x48, 0x8D, 0x05, 0x06, 0x00, 0x00, 0x00, 0xFF, 0xE0, 0xFF, 0xFF,
    0xFF, 0xFF, 0xB0, 0x43, 0xEE, 0xB0, 0x0A, 0xEE, 0x89, 0xD8, 0x66, 0xBA, 0xF4, 0x00, 0xEE, 0xF4, 0xEB, 0xFD, 0x83,
    0xC3, 0x03, 0xC3,
  ]

  /// The same guest with both stores made NOPs: prints "AYC\n", exits with 3003 & 0xFF (status
  /// 119).
  static var computedJumpOnly: [UInt8] {
    var g = selfModifyingComputedJump
    for i in Array(0x18..<0x1F) + Array(0x22..<0x29) { g[i] = 0x90 }
    return g
  }

  /// Flat 32-bit code (protected mode, paging off): prints "A", calls f (EBX += 3) 1000 times and
  /// exits with BL (3000 & 0xFF: status 113).
  static let flat32Loop: [UInt8] = [
    0xBA, 0xF8, 0x03, 0x00, 0x00, 0xB0, 0x41, 0xEE, 0xB9, 0xE8, 0x03, 0x00, 0x00, 0x31, 0xDB, 0xE8, 0x0E, 0x00, 0x00,
    0x00, 0xFF, 0xC9, 0x75, 0xF7, 0x89, 0xD8, 0x66, 0xBA, 0xF4, 0x00, 0xEE, 0xF4, 0xEB, 0xFD, 0x83, 0xC3, 0x03, 0xC3,
  ]

  /// A loop over several blocks of one page with a call inside (a register region): prints "R",
  /// then 300 rounds of `add ebx,ecx; mov eax,[rsi]; xor edi,eax; test ecx,1; jz even` (0x21),
  /// odd rounds `lea ebx,[rbx+rcx*2]; add r8d,3; jmp join` (0x2F), even rounds `sub edi,ecx;
  /// call f` (0x38), `join: imul eax,ebx,7; add r9d,eax; cmp ecx,2; jne skip` (0x3F), `poison:
  /// movabs rsi,1<<63` (0x4A, only in the round with ECX = 2), `skip: dec ecx; jnz loop` (0x54);
  /// then prints the low byte of EBX+EDI+R8D+R9D+EDX and exits with it through isa-debug-exit;
  /// `f: add edx,edi; add edx,11; ret` (0x70). Eight guest registers, more than the six cache
  /// registers. With the poison, the last round's load (0x23) raises #GP in the middle of the
  /// loop's first block, its ADD done: with no IDT the machine stops (triple fault) there.
  static let regionLoopWithFault: [UInt8] = [
    0xBA, 0xF8, 0x03, 0x00, 0x00, 0xB0, 0x52, 0xEE, 0x31, 0xDB, 0xB9, 0x2C, 0x01, 0x00, 0x00, 0xBE, 0x00, 0x00, 0x01,
    0x00, 0x31, 0xFF, 0x41, 0xB8, 0x05, 0x00, 0x00, 0x00, 0x45, 0x31, 0xC9, 0x31, 0xD2, 0x01, 0xCB, 0x8B, 0x06, 0x31,
    0xC7, 0xF7, 0xC1, 0x01, 0x00, 0x00, 0x00, 0x74, 0x09, 0x8D, 0x1C, 0x4B, 0x41, 0x83, 0xC0, 0x03, 0xEB, 0x07, 0x29,
    0xCF, 0xE8, 0x31, 0x00, 0x00, 0x00, 0x6B, 0xC3, 0x07, 0x41, 0x01, 0xC1, 0x83, 0xF9, 0x02, 0x75, 0x0A, 0x48, 0xBE,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x80, 0xFF, 0xC9, 0x75, 0xC9, 0x89, 0xD8, 0x01, 0xF8, 0x44, 0x01, 0xC0,
    0x44, 0x01, 0xC8, 0x01, 0xD0, 0xBA, 0xF8, 0x03, 0x00, 0x00, 0xEE, 0x66, 0xBA, 0xF4, 0x00, 0xEE, 0xF4, 0x01, 0xFA,
    0x83, 0xC2, 0x0B, 0xC3,
  ]

  /// `regionLoopWithFault` with the poison made NOPs: all 300 rounds run and the guest exits.
  static var regionLoop: [UInt8] {
    var g = regionLoopWithFault
    for i in 0x4A..<0x54 { g[i] = 0x90 }
    return g
  }

  /// The translation file `trivisor translate` makes for `guest` as a flat binary at `base`.
  static func translation(of guest: [UInt8], mode: BootState.Mode = .long64) throws -> StaticTranslation.Report {
    try StaticTranslation.translate(
      image: guest, options: LoadOptions(flatAddress: base, flatMode: mode), ramSize: 8 << 20)
  }

  /// What one engine did with a guest.
  struct Run: Equatable {
    var output: String
    var status: Int32
    var counters: [String: UInt64]
    /// The registers a shutdown (triple fault) reported, if the run ended so.
    var registers: Registers? = nil

    static func == (a: Run, b: Run) -> Bool { a.output == b.output && a.status == b.status }
  }

  /// Runs `guest` at `base` on `engine` to its end: 64-bit code booted by `SmallGuestBoot`, or
  /// with `flatMode` as `trivisor run --flat-address` boots it.
  static func run(_ guest: [UInt8], on engine: any Engine, flatMode: BootState.Mode? = nil) throws -> Run {
    let memory = try GuestMemory(ramSize: 8 << 20)
    let boot: BootState
    if let flatMode {
      boot = try ImageLoader.load(
        image: guest, into: memory, options: LoadOptions(flatAddress: base, flatMode: flatMode))
    } else {
      try memory.write(base, bytes: guest)
      boot = try SmallGuestBoot.prepare(memory: memory, entry: base)
    }
    let output = CapturedText()
    var configuration = MachineConfiguration(consoleCapture: { output.append($0) }, timeoutSeconds: 20)
    configuration.firmwareConfigurationDevice = false
    let vm = try Machine(memory: memory, boot: boot, engine: engine, configuration: configuration)
    let outcome = vm.run()
    var counters: [String: UInt64] = [:]
    for c in outcome.statistics.engineCounters { counters[c.name] = c.value }
    var registers: Registers?
    if case .shutdown(_, let report) = outcome.reason { registers = report.registers }
    return Run(output: output.text, status: outcome.exitStatus, counters: counters, registers: registers)
  }
}

/// Console output collected from the vCPU thread.
final class CapturedText: @unchecked Sendable {
  private var bytes: [UInt8] = []
  private let lock = NSLockLike()

  /// Appends what the guest wrote.
  func append(_ data: [UInt8]) { lock.locked { bytes += data } }
  /// Everything so far, as text.
  var text: String { lock.locked { String(decoding: bytes, as: UTF8.self) } }
}

/// A pthread mutex.
final class NSLockLike: @unchecked Sendable {
  private var mutex = pthread_mutex_t()
  init() { pthread_mutex_init(&mutex, nil) }
  deinit { pthread_mutex_destroy(&mutex) }
  /// Runs `body` holding the lock.
  func locked<T>(_ body: () -> T) -> T {
    pthread_mutex_lock(&mutex)
    defer { pthread_mutex_unlock(&mutex) }
    return body()
  }
}
