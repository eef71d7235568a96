import Testing
import TrapAndEmulate
import VMM
import X86

/// Every combination of the guest's U/S, R/W and XD (at the leaf or at an upper level), the access
/// kind, the guest's CPL, CR0.WP, EFER.NXE, CR4.SMEP and a preset dirty bit, run through the shadow
/// page tables on a simulated ring-3 CPU and compared with the X86 model's page walker on an
/// identical copy of the guest: the same outcome (physical address or #PF error code) and the same
/// accessed and dirty bits in the guest's tables after each of two accesses.
@Suite struct ShadowPermissionTests {
  static let linear: UInt64 = 0x0000_7F12_3456_7000
  static let frame: UInt64 = 0x8_1000

  /// The guest of one combination.
  struct Combination: CustomStringConvertible {
    var user, writable, noExecute, atUpperLevel, dirty: Bool
    var cpl: Int
    var wp, nxe, smep: Bool

    var description: String {
      "U/S=\(user ? 1 : 0) R/W=\(writable ? 1 : 0) XD=\(noExecute ? 1 : 0) at \(atUpperLevel ? "PDE" : "PTE")"
        + " D=\(dirty ? 1 : 0) CPL\(cpl) WP=\(wp ? 1 : 0) NXE=\(nxe ? 1 : 0) SMEP=\(smep ? 1 : 0)"
    }

    /// Builds the guest's tables in `memory`; returns the root.
    func build(_ memory: GuestMemory) throws -> UInt64 {
      let tables = try GuestTables(memory: memory)
      let rights = (user ? PTE.us : 0) | (writable ? PTE.rw : 0) | (noExecute ? PTE.xd : 0)
      if atUpperLevel {
        try tables.map(linear, to: frame, leaf: PTE.open | (dirty ? PTE.d : 0))
        let pde = try tables.entry(linear, level: 2)
        try tables.set(linear, level: 2, (pde & 0x000F_FFFF_FFFF_F000) | PTE.p | rights)
      } else {
        try tables.map(linear, to: frame, leaf: rights | (dirty ? PTE.d : 0))
      }
      return tables.root
    }
  }

  static var combinations: [Combination] {
    var all: [Combination] = []
    for user in [false, true] {
      for writable in [false, true] {
        for noExecute in [false, true] {
          for atUpperLevel in [false, true] {
            for dirty in [false, true] {
              for cpl in [0, 3] {
                for wp in [false, true] {
                  for nxe in [false, true] {
                    for smep in [false, true] {
                      all.append(
                        Combination(
                          user: user, writable: writable, noExecute: noExecute, atUpperLevel: atUpperLevel,
                          dirty: dirty, cpl: cpl, wp: wp, nxe: nxe, smep: smep))
                    }
                  }
                }
              }
            }
          }
        }
      }
    }
    return all
  }

  /// The four entries of the test page's walk, root to leaf (their accessed and dirty bits).
  static func walkedEntries(_ memory: GuestMemory, root: UInt64) throws -> [UInt64] {
    var table = root
    var entries: [UInt64] = []
    for level in [4, 3, 2, 1] {
      let entry = try memory.read(UInt64.self, at: table + ((linear >> UInt64(12 + 9 * (level - 1))) & 0x1FF) * 8)
      entries.append(entry)
      table = entry & 0x000F_FFFF_FFFF_F000
    }
    return entries
  }

  @Test func everyPermissionCombinationMatchesThePageWalker() throws {
    let kinds: [MemoryAccessKind] = [.read, .write, .execute]
    var mismatches: [String] = []
    var checked = 0
    let shadowMemory = try GuestMemory(ramSize: 1 << 20)
    let modelMemory = try GuestMemory(ramSize: 1 << 20)
    for combination in Self.combinations {
      for first in kinds {
        for second in kinds {
          // One pair of memories for all (a GuestMemory's creation is not free): tables rebuilt.
          try shadowMemory.fill(0x10000, length: 0x10000)
          try modelMemory.fill(0x10000, length: 0x10000)
          let shadows = try ShadowPageTables(memory: shadowMemory, pool: ShadowFramePool(range: 0xC_0000..<0x10_0000))
          let root = try combination.build(shadowMemory)
          _ = try combination.build(modelMemory)
          let control = guestControl(root: root, wp: combination.wp, nxe: combination.nxe, smep: combination.smep)
          try shadows.activate(control: control, mode: ShadowMode(guestCPL: combination.cpl))
          for kind in [first, second] {
            let expected = modelAccess(
              Self.linear, kind: kind, cpl: combination.cpl, control: control, memory: modelMemory)
            let actual = shadowAccess(Self.linear, kind: kind, shadows: shadows)
            let modelTables = try Self.walkedEntries(modelMemory, root: root)
            let shadowTables = try Self.walkedEntries(shadowMemory, root: root)
            checked += 1
            if expected != actual || modelTables != shadowTables {
              mismatches.append(
                "\(combination) \(first)→\(kind): model \(expected) shadow \(actual)"
                  + (modelTables != shadowTables ? " (A/D bits differ)" : ""))
            }
          }
          if combination.cpl == 3 && !combination.user {
            #expect(shadows.shadowLeaf(Self.linear) == nil, "a supervisor page is never in the user shadow")
          }
        }
      }
    }
    #expect(checked == Self.combinations.count * 18)
    let report = "\(mismatches.count) of \(checked):\n" + mismatches.prefix(20).joined(separator: "\n")
    #expect(mismatches.count == 0, Comment(rawValue: report))
  }
}
