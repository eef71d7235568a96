import ArgumentParser
import StaticTranslator
import VMM

/// `trivisor translate`: static binary translation of a guest image into a translation file
/// (docs/binary-translation.md), run with `trivisor run IMAGE --engine sbt --translations FILE`.
struct TranslateCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "translate",
    abstract: "Translate a guest image's code ahead of time into a translation file for --engine sbt.",
    discussion: """
      Loads IMAGE as `trivisor run` would (ELF64, Multiboot, or a raw binary with --flat-address), \
      discovers its code by recursive traversal from the entry point and the ELF function symbols \
      (direct jumps, calls, both ways of conditional branches, and jump tables of the \
      position-independent form with a bound; other indirect branches are listed, not followed), \
      translates every block with the dynamic translator's back end into host code \
      with relocation records, and writes FILE with the SHA-256 of every guest page it covers and \
      a checksum of the whole file. `trivisor run IMAGE --engine sbt --translations FILE` installs \
      a block only after its page's hash matched, and translates everything else at run time.
      """)

  @Argument(help: "Guest image (ELF64, Multiboot, or raw with --flat-address).")
  var image: String

  @Option(name: .short, parsing: .unconditional, help: ArgumentHelp("Translation file to write.", valueName: "file"))
  var output: String

  @Option(
    name: .customLong("flat-address"), parsing: .unconditional, help: "Load IMAGE as a raw binary at this address.")
  var flatAddress: String?

  @Option(
    name: .customLong("flat-mode"), parsing: .unconditional,
    help: "CPU mode the raw binary starts in: protected32 or long64 (default).")
  var flatMode: String?

  @Option(
    name: .customLong("flat-entry"), parsing: .unconditional,
    help: "Entry point of the raw binary (default: its address).")
  var flatEntry: String?

  @Flag(
    name: .customLong("restart-points"),
    help:
      "Also translate blocks starting after every instruction that may side-exit (memory, stack, port I/O): the places the dispatcher restarts in mid-block (a larger file)."
  )
  var restartPoints = false

  @Flag(help: "List the jump tables followed, the unresolved indirect branches and where discovery stopped.")
  var verbose = false

  func run() throws {
    let bytes: [UInt8]
    do throws(HostFileError) { bytes = try HostFile.readRegular(image, what: "image") } catch {
      throw ValidationError(error.description)
    }
    var options = LoadOptions(imagePath: image)
    if let a = flatAddress {
      guard let v = DisasmCommand.parseNumber(a) else { throw ValidationError("invalid --flat-address '\(a)'") }
      options.flatAddress = v
    }
    if let m = flatMode {
      guard let mode = BootState.Mode(rawValue: m), mode != .real else {
        throw ValidationError("invalid --flat-mode '\(m)' (choose from protected32, long64)")
      }
      guard options.flatAddress != nil else { throw ValidationError("--flat-mode needs --flat-address") }
      options.flatMode = mode
    }
    if let e = flatEntry {
      guard let v = DisasmCommand.parseNumber(e) else { throw ValidationError("invalid --flat-entry '\(e)'") }
      guard options.flatAddress != nil else { throw ValidationError("--flat-entry needs --flat-address") }
      options.flatEntry = v
    }
    let report: StaticTranslation.Report
    do throws(TranslationFileError) {
      report = try StaticTranslation.translate(image: bytes, options: options, restartPoints: restartPoints)
    } catch {
      throw ValidationError("\(image): \(error.description)")
    }
    let data = report.file.serialized()
    do throws(HostFileError) { try HostFile.write(data, to: output, what: "translation file") } catch {
      throw ValidationError(error.description)
    }
    func hex(_ v: UInt64) -> String { "0x" + String(v, radix: 16) }
    print(
      "\(image): \(report.blocksDiscovered) blocks (\(report.instructions) instructions) discovered in \(report.mode) code; "
        + "\(report.file.blocks.count) translations written (\(report.blocksSkipped) left to run time), "
        + "\(report.file.pages.count) pages hashed, \(report.jumpTables.count) jump tables followed, "
        + "\(report.indirectSites.count) unresolved indirect branches, "
        + "\(report.stops.count) stops at undecodable bytes; \(data.count) bytes to \(output)")
    if verbose {
      print(
        "  flag liveness (\(report.livenessRounds) rounds): \(report.hostFlagsEntries) translations with a host-flags "
          + "entry, \(report.hostFlagsExits) direct branches leaving with the flags uncaptured")
      print(
        "  register regions: \(report.registerRegions.count) (\(report.registerRegions.reduce(0) { $0 + $1.count }) "
          + "blocks), \(report.registerLiveExits) direct branches keeping their registers live")
      for s in report.jumpTables { print("  jump table at \(hex(s)): entries followed") }
      for s in report.indirectSites { print("  indirect branch at \(hex(s)): target left to run time") }
      for s in report.stops { print("  stopped at \(hex(s)): no instruction decodes there") }
    }
  }
}
