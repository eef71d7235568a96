import Interpreter
import Translator
import VMM
import X86

/// A checked translation file ready to run: its blocks by (RIP, physical RIP, privilege class,
/// code mode) and the content hash of every page they lie in. Immutable, shared by every vCPU.
public final class StaticTranslationSet: Sendable {
  struct Key: Hashable {
    var linear: UInt64
    var physical: UInt64
    var user: Bool
    var mode: TranslatedCodeMode
  }

  let blocks: [Key: RelocatableBlock]
  /// The blocks of each (linear page, physical page, class, mode) by RIP: where link-time
  /// resolution finds the blocks a block branches to once the page matched.
  let pages: [Key: [UInt64: RelocatableBlock]]
  let pageHashes: [UInt64: [UInt8]]

  /// The set in `file`, which must be for this build of the translator (else a one-line error).
  package init(_ file: TranslationFile) {
    var blocks: [Key: RelocatableBlock] = [:]
    for b in file.blocks {
      blocks[Key(linear: b.linear, physical: b.physical, user: b.user, mode: b.mode)] = b.code
    }
    self.blocks = blocks
    var pages: [Key: [UInt64: RelocatableBlock]] = [:]
    for (key, block) in blocks {
      let page = Key(linear: key.linear & ~0xFFF, physical: key.physical & ~0xFFF, user: key.user, mode: key.mode)
      pages[page, default: [:]][key.linear] = block
    }
    self.pages = pages
    pageHashes = Dictionary(file.pages.map { ($0.physical, $0.hash) }, uniquingKeysWith: { a, _ in a })
  }

  /// Reads and checks the translation file at `path` (size, checksum, version, this build's
  /// fingerprint, every record); throws a one-line error for anything wrong.
  public convenience init(contentsOf path: String) throws(TranslationFileError) {
    let data: [UInt8]
    do { data = try readWholeFile(path) } catch { throw error }
    try self.init(TranslationFile(parsing: data, expectedFingerprint: Self.currentFingerprint))
  }

  /// Blocks in the set.
  public var blockCount: Int { blocks.count }
  /// Pages the set covers.
  public var pageCount: Int { pageHashes.count }

  /// This build's back-end fingerprint (`RelocatableBlock.backendFingerprint`).
  package static var currentFingerprint: UInt64 {
    RelocatableBlock.backendFingerprint(layout: CPU(model: .host64, memory: NoMemory()).translationTables)
  }

  /// SHA-256 of the 4 KiB page at `page` in `memory`, nil when it is not RAM or ROM.
  package static func hash(page: UInt64, in memory: any PhysicalMemory) -> [UInt8]? {
    guard let p = memory.hostPointer(physical: page, length: 4096, write: false) else { return nil }
    return SHA256.hash(UnsafeRawBufferPointer(start: p, count: 4096))
  }
}

/// Memory with nothing in it (a CPU made only to read the translator's layout constants).
private final class NoMemory: PhysicalMemory {
  func hostPointer(physical: UInt64, length: Int, write: Bool) -> UnsafeMutableRawPointer? { nil }
}

/// Reads a whole host file (regular files only).
private func readWholeFile(_ path: String) throws(TranslationFileError) -> [UInt8] {
  do throws(HostFileError) {
    return try HostFile.readRegular(path, what: "translation file")
  } catch {
    throw TranslationFileError(error.description)
  }
}

/// One vCPU's view of a `StaticTranslationSet`: hands its dynamic translator a block only after
/// the page the block lies in hashed to what the file recorded, checked at the first execution of
/// a block of the page at each of its code generations (a guest write to the page changes the
/// generation, so the page is hashed again before any of its blocks is installed again).
final class StaticBlockIndex: StaticBlockSource {
  private let set: StaticTranslationSet
  /// Per physical page: the generation at which it last matched (true) or did not (false).
  private var checked: [UInt64: (generation: UInt32, matched: Bool)] = [:]
  private var pagesMatched: UInt64 = 0
  private var pagesRejected: UInt64 = 0
  private var blocksFound: UInt64 = 0
  private var blocksNotCovered: UInt64 = 0
  private var blocksRejected: UInt64 = 0

  init(_ set: StaticTranslationSet) { self.set = set }

  func block(for cpu: CPU, rip: UInt64, physical: UInt64, user: Bool, mode: TranslatedCodeMode) -> RelocatableBlock? {
    guard let found = set.blocks[.init(linear: rip, physical: physical, user: user, mode: mode)] else {
      blocksNotCovered &+= 1
      return nil
    }
    let page = physical & ~0xFFF
    let generation = cpu.codeGeneration(ofPageHolding: physical)
    let matched: Bool
    if let c = checked[page], c.generation == generation {
      matched = c.matched
    } else {
      matched = StaticTranslationSet.hash(page: page, in: cpu.memory) == set.pageHashes[page]
      checked[page] = (generation, matched)
      if matched { pagesMatched &+= 1 } else { pagesRejected &+= 1 }
    }
    guard matched else {
      blocksRejected &+= 1
      return nil
    }
    blocksFound &+= 1
    return found
  }

  func pageBlocks(
    for cpu: CPU, rip: UInt64, physical: UInt64, user: Bool, mode: TranslatedCodeMode
  ) -> [UInt64: RelocatableBlock] {
    let page = StaticTranslationSet.Key(linear: rip & ~0xFFF, physical: physical & ~0xFFF, user: user, mode: mode)
    // Only after `block(for:)` matched this page at the current generation.
    guard let c = checked[physical & ~0xFFF], c.matched,
      c.generation == cpu.codeGeneration(ofPageHolding: physical)
    else { return [:] }
    return set.pages[page] ?? [:]
  }

  var counters: [(name: String, value: UInt64, description: String)] {
    [
      (
        "sbt-pages-matched", pagesMatched, "code pages whose content hash matched the translation file (per generation)"
      ),
      (
        "sbt-pages-rejected", pagesRejected,
        "code pages rejected for a hash mismatch (their code ran dynamically translated)"
      ),
      ("sbt-blocks-found", blocksFound, "lookups answered from the translation file"),
      ("sbt-blocks-rejected", blocksRejected, "file blocks not used because their page did not match"),
      (
        "sbt-blocks-not-covered", blocksNotCovered,
        "translations the file did not cover (left to the dynamic translator)"
      ),
    ]
  }
}

/// The `sbt` engine: `dbt` whose translators first install blocks from a translation file made
/// ahead of time (`trivisor translate`), validated by the content hash of their page, and
/// translate dynamically everything the file does not cover (code discovery did not find, code
/// written or loaded at run time, pages whose content differs). Without a file it is `dbt`.
public final class StaticTranslatorEngine: Engine {
  /// The engine's name.
  public let name = "sbt"
  /// Guest time follows the instruction count (`--deterministic`).
  public let deterministic: Bool
  /// The translations, or nil (everything dynamically translated).
  public let translations: StaticTranslationSet?

  /// An engine over `translations`.
  public init(translations: StaticTranslationSet?, deterministic: Bool = false) {
    self.translations = translations
    self.deterministic = deterministic
  }

  /// A VM whose vCPUs each get a dynamic translator with the file's blocks as their source.
  public func createVM(memory: GuestMemory, options: EngineOptions) throws(EngineError) -> any EngineVM {
    guard options.interruptController == .user else {
      throw EngineError("the sbt engine has no in-kernel interrupt controller: use --irqchip user")
    }
    let set = translations
    return InterpreterVM(
      memory: memory, model: .host64, deterministic: deterministic, identity: options.cpu, engineName: name,
      makeTranslator: { () throws(EngineError) -> any BlockExecutor in
        do throws(TranslatorError) {
          let t = try DynamicTranslator(codeBytes: 32 << 20)
          if let set { t.staticBlocks = StaticBlockIndex(set) }
          return t
        } catch {
          throw EngineError("sbt: \(error.description)")
        }
      })
  }
}
