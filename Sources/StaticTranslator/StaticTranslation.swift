import Translator
import VMM
import X86

/// `trivisor translate`'s work: loads an image as `trivisor run` would, discovers its code
/// (`Discovery`), compiles every block with the translator's back end into relocatable host code
/// (`RelocatableBlock`) and hashes every page a block lies in.
package enum StaticTranslation {
  /// What a translation made, for the command's report.
  package struct Report {
    /// The file's contents.
    package var file: TranslationFile
    /// Blocks discovered.
    package var blocksDiscovered: Int
    /// Guest instructions in them.
    package var instructions: Int
    /// Blocks left to the dynamic translator (not relocatable).
    package var blocksSkipped: Int
    /// Indirect branches whose targets were not resolved.
    package var indirectSites: [UInt64]
    /// Indirect jumps recognized as jump tables.
    package var jumpTables: [UInt64]
    /// Where traversal stopped at bytes that do not decode.
    package var stops: [UInt64]
    /// The code mode translated.
    package var mode: TranslatedCodeMode
    /// Translations with a host-flags entry (their flags dead at their start, `FlagLiveness`).
    package var hostFlagsEntries: Int = 0
    /// Direct branches that leave with the flags uncaptured, to such an entry.
    package var hostFlagsExits: Int = 0
    /// Rounds the flag liveness analysis took to converge.
    package var livenessRounds: Int = 0
    /// Register regions found (`RegisterRegions`), each one list of block RIPs.
    package var registerRegions: [[UInt64]] = []
    /// Direct branches that leave with a region's registers live, to a register-live entry.
    package var registerLiveExits: Int = 0
  }

  /// Translates `image` loaded with `options` into `ramSize` bytes of guest RAM; 64-bit code is
  /// translated for both privilege classes (kernel and user), 32-bit code for ring 0 only.
  package static func translate(
    image: [UInt8], options: LoadOptions, ramSize: UInt64 = 256 << 20, restartPoints: Bool = false
  ) throws(TranslationFileError) -> Report {
    let memory: GuestMemory
    do { memory = try GuestMemory(ramSize: ramSize) } catch {
      throw TranslationFileError("cannot make guest memory: \(error)")
    }
    let boot: BootState
    do { boot = try ImageLoader.load(image: image, into: memory, options: options) } catch {
      throw TranslationFileError("\(error)")
    }
    let mode: TranslatedCodeMode
    switch boot.mode {
    case .long64: mode = .long64
    case .protected32: mode = .flat32Unpaged
    case .real: throw TranslationFileError("the image starts in real mode: 16-bit code is not translated")
    }
    let elf = options.flatAddress == nil ? ELFCodeMap(image) : ELFCodeMap([])
    let cpu = CPU(model: .host64, memory: ReadOnlyGuestMemory(memory))
    let limit = memory.ramSize
    let found = Discovery.discover(
      cpu: cpu, entries: [boot.registers.rip] + elf.functionSymbols, mode: mode,
      physical: { a in
        let p = elf.physical(a)
        return p < limit ? p : nil
      }, restartPoints: restartPoints)
    let layout = cpu.translationTables
    var blocks: [TranslationFile.Block] = []
    var skipped = 0
    var pages = Set<UInt64>()
    var byRIP: [UInt64: GuestBlock] = [:]
    for b in found.blocks { byRIP[b.startRIP] = b }
    let liveness = FlagLiveness(byRIP.mapValues { FlagLiveness.Node($0) })
    var hostFlagsEntries = 0
    var hostFlagsExits = 0
    let regions = RegisterRegions(byRIP.mapValues { RegisterRegions.Node($0) })
    var registerLiveExits = 0
    for user in mode == .long64 ? [false, true] : [false] {
      // A block gets a host-flags entry when the whole graph says its flags are dead at its start
      // and its own compile sees them so (each written before being read or leaving); a direct
      // branch to such a block of the same page takes it.
      var entry: [UInt64: Bool] = [:]
      for (rip, b) in byRIP {
        entry[rip] =
          liveness.live(at: rip) == 0 && BlockCompiler.flagsDeadAtStart(b, user: user, layout: layout)
      }
      for b in found.blocks {
        let node = FlagLiveness.Node(b)
        let targets = node.successors.compactMap { $0 } + node.steps.compactMap(\.takenTo)
        let dead = Set(targets.filter { $0 & ~0xFFF == b.startRIP & ~0xFFF && entry[$0] == true })
        let crossBlock = BlockCompiler.CrossBlockFlags(deadAtStart: dead, hostFlagsEntry: entry[b.startRIP] == true)
        guard
          let code = RelocatableBlock.compile(
            b, user: user, layout: layout, crossBlock: crossBlock, region: regions.decisions[b.startRIP])
        else {
          skipped += 1
          continue
        }
        if code.hostFlagsEntry != nil { hostFlagsEntries += 1 }
        hostFlagsExits += code.hostFlagsLinks.count
        registerLiveExits += code.registerLiveLinks.count + code.registerLiveHostFlagsLinks.count
        blocks.append(
          TranslationFile.Block(linear: b.startRIP, physical: b.physicalStart, mode: mode, user: user, code: code))
        pages.insert(b.physicalStart & ~0xFFF)
      }
    }
    blocks.sort { ($0.linear, $0.user ? 1 : 0) < ($1.linear, $1.user ? 1 : 0) }
    let hashed = pages.sorted().map { page in
      TranslationFile.Page(physical: page, hash: StaticTranslationSet.hash(page: page, in: cpu.memory) ?? [])
    }
    let file = TranslationFile(
      fingerprint: RelocatableBlock.backendFingerprint(layout: layout), pages: hashed, blocks: blocks)
    return Report(
      file: file, blocksDiscovered: found.blocks.count,
      instructions: found.blocks.reduce(0) { $0 + $1.instructions.count }, blocksSkipped: skipped,
      indirectSites: found.indirectSites, jumpTables: found.jumpTables, stops: found.stops, mode: mode,
      hostFlagsEntries: hostFlagsEntries, hostFlagsExits: hostFlagsExits, livenessRounds: liveness.rounds,
      registerRegions: regions.regions, registerLiveExits: registerLiveExits)
  }
}

/// Guest memory as the X86 model reads it for discovery: RAM and ROM by host pointer, never
/// writable (discovery only decodes).
final class ReadOnlyGuestMemory: PhysicalMemory {
  private let regions: [MemoryRegion]

  init(_ memory: GuestMemory) { regions = memory.regions }

  func hostPointer(physical: UInt64, length: Int, write: Bool) -> UnsafeMutableRawPointer? {
    guard !write else { return nil }
    for r in regions where r.contains(physical, length: UInt64(length)) {
      return r.host + Int(physical - r.guestAddress)
    }
    return nil
  }
}
