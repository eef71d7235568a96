import Testing

@testable import VMM

/// The MP table a directly loaded kernel finds: scanned for the way Linux scans (16-byte steps
/// through 0xF0000-0xFFFFF), checksums verified, entries decoded.
@Suite struct MPTableTests {
  struct Parsed {
    var processors: [(apicID: UInt8, flags: UInt8)] = []
    var ioapics: [(id: UInt8, address: UInt32)] = []
    var ioInterrupts: [(type: UInt8, irq: UInt8, pin: UInt8)] = []
    var localInterrupts: [(type: UInt8, lint: UInt8)] = []
    var localAPIC: UInt32 = 0
  }

  static func sum(_ bytes: [UInt8]) -> UInt8 { bytes.reduce(0, &+) }

  static func parse(_ memory: GuestMemory) throws -> Parsed? {
    var address: UInt64 = 0xF0000
    while address < 0x10_0000 {
      let p = try memory.read(address, count: 16)
      if p[0..<4].elementsEqual("_MP_".utf8) {
        #expect(sum(p) == 0, "floating pointer checksum")
        #expect(p[8] == 1 && p[9] == 4)
        let tableAddress = UInt64(try memory.read(UInt32.self, at: address + 4))
        let length = Int(try memory.read(UInt16.self, at: tableAddress + 4))
        let table = try memory.read(tableAddress, count: length)
        #expect(table[0..<4].elementsEqual("PCMP".utf8))
        #expect(sum(table) == 0, "configuration table checksum")
        var out = Parsed()
        out.localAPIC = try memory.read(UInt32.self, at: tableAddress + 36)
        let count = Int(try memory.read(UInt16.self, at: tableAddress + 34))
        var i = 44
        for _ in 0..<count {
          switch table[i] {
          case 0:
            out.processors.append((table[i + 1], table[i + 3]))
            i += 20
          case 1: i += 8
          case 2:
            out.ioapics.append(
              (
                table[i + 1],
                UInt32(table[i + 4]) | UInt32(table[i + 5]) << 8 | UInt32(table[i + 6]) << 16 | UInt32(table[i + 7])
                  << 24
              ))
            i += 8
          case 3:
            out.ioInterrupts.append((table[i + 1], table[i + 5], table[i + 7]))
            i += 8
          case 4:
            out.localInterrupts.append((table[i + 1], table[i + 7]))
            i += 8
          default:
            Issue.record("unknown entry type \(table[i])")
            return nil
          }
        }
        #expect(i == length)
        return out
      }
      address += 16
    }
    return nil
  }

  @Test(arguments: [2, 4]) func aKernelFindsEveryProcessorTheIOAPICAndTheISARouting(cpus: Int) throws {
    let memory = try GuestMemory(ramSize: 2 << 20)
    try MPTable.install(into: memory, cpuCount: cpus)
    let t = try #require(try Self.parse(memory))
    #expect(t.localAPIC == 0xFEE0_0000)
    #expect(t.processors.map(\.apicID) == (0..<cpus).map { UInt8($0) })
    #expect(t.processors.map(\.flags) == [3] + Array(repeating: 1, count: cpus - 1))
    #expect(t.ioapics.count == 1 && t.ioapics[0].address == 0xFEC0_0000 && t.ioapics[0].id == UInt8(cpus))
    let irq0 = t.ioInterrupts.filter { $0.type == 0 && $0.irq == 0 }
    #expect(irq0.count == 1 && irq0[0].pin == 2)
    #expect(t.ioInterrupts.contains { $0.type == 0 && $0.irq == 4 && $0.pin == 4 })
    #expect(!t.ioInterrupts.contains { $0.type == 0 && $0.irq == 2 })
    #expect(t.localInterrupts.map(\.lint) == [0, 1])
  }

  @Test func aMultiVCPUMachineInstallsItAndAUniprocessorOneDoesNot() throws {
    func machine(cpus: Int) throws -> GuestMemory {
      let memory = try GuestMemory(ramSize: 2 << 20)
      var configuration = MachineConfiguration()
      configuration.cpuCount = cpus
      _ = try Machine(
        memory: memory, boot: BootState(mode: .real, registers: Registers(), specialRegisters: SpecialRegisters()),
        engine: ScriptedEngine(scripts: Array(repeating: [], count: cpus)), configuration: configuration)
      return memory
    }
    #expect(try Self.parse(try machine(cpus: 1)) == nil)
    #expect(try Self.parse(try machine(cpus: 2))?.processors.count == 2)
  }
}
