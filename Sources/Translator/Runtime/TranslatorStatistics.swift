/// What the translator did, for `--stats` (each stage of the seed's four has its counters).
package struct TranslatorStatistics {
  /// Lookup: blocks found valid in the code cache, and lookups that had to translate.
  package var cacheHits: UInt64 = 0
  package var cacheMisses: UInt64 = 0
  /// Of the misses, those where a block existed but its code page had been written since.
  package var invalidations: UInt64 = 0
  /// Context switches: entries into generated code (each returns to the dispatcher).
  package var blockEntries: UInt64 = 0
  /// Blocks installed from a translation file (`sbt`) instead of compiled.
  package var staticBlocksInstalled: UInt64 = 0
  /// Of those, blocks installed with the first block of their page, before they ran (link time).
  package var staticBlocksInstalledAhead: UInt64 = 0
  /// Branches that leave with the flags uncaptured linked to a host-flags entry (`sbt`).
  package var hostFlagsLinksPatched: UInt64 = 0
  /// Branches that keep a register region's registers live linked to a register-live entry (`sbt`).
  package var registerLiveLinksPatched: UInt64 = 0
  /// Of `translatedInstructions`, those completed by blocks from a translation file.
  package var staticTranslatedInstructions: UInt64 = 0
  /// Returns before a block's end: an instruction whose fast case failed (TLB miss, page
  /// crossing, a store to code, MMIO...) runs in the interpreter.
  package var sideExits: UInt64 = 0
  /// Inline TLB lookups of reads that missed: filled by a page walk from generated code (which then
  /// went on), or left to the interpreter (a fault, MMIO, a page crossing, a non-canonical address).
  package var tlbMissFills: UInt64 = 0
  package var tlbMissExits: UInt64 = 0
  /// IN/OUT answered through the port helper, and left to the interpreter by it.
  package var portIOAnswered: UInt64 = 0
  package var portIOExits: UInt64 = 0
  /// SYSCALL/SYSRET/IRETQ run by their helper, and those that faulted (left to the interpreter).
  package var privilegeTransfers: UInt64 = 0
  package var privilegeTransferFaults: UInt64 = 0
  /// Translation: blocks and guest instructions translated, host bytes emitted, time spent.
  package var blocksTranslated: UInt64 = 0
  package var instructionsTranslated: UInt64 = 0
  package var hostBytes: UInt64 = 0
  /// Guest instructions translated into a constant (their result known at translation time).
  package var instructionsFolded: UInt64 = 0
  package var translationNanoseconds: UInt64 = 0
  /// Execute: guest instructions completed by generated code.
  package var translatedInstructions: UInt64 = 0
  /// Link: direct branches patched to jump straight to their target block.
  package var chainsPatched: UInt64 = 0
  /// Link: inline indirect-branch table lookups in generated code that found the block, and that
  /// missed (back to the dispatcher).
  package var indirectHits: UInt64 = 0
  package var indirectMisses: UInt64 = 0
  /// Callouts: instructions generated code handed to the interpreter (system instructions and
  /// everything else the back end does not translate).
  package var callouts: UInt64 = 0
  /// Callouts after which generated code went on through the indirect-branch table (control
  /// went elsewhere, at the same or another privilege level).
  package var calloutsContinuedElsewhere: UInt64 = 0
  /// The code buffer filled up and every translation was dropped.
  package var cacheFlushes: UInt64 = 0
  /// Addresses whose first instruction the back end does not translate (marked, not retried until
  /// their page changes).
  package var untranslatableStarts: UInt64 = 0
}
