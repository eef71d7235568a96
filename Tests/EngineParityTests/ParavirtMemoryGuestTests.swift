import Interpreter
import TestHostSupport
import Testing
import Translator
import VMM

/// A ring-0 guest that manages its page tables through the paravirtual ABI: it installs the
/// hypercall page, builds a 4-level tree identity-mapping 0-2 MiB (its own tables read-only),
/// pins it, fills entries with `mmu_update` and a `multicall` batch (one more entry, `new_baseptr`
/// to switch CR3, `update_va_mapping`, a refused double pin), reads through the new mappings, then
/// remaps a page it has just read with `update_va_mapping` + INVLPG and reads the new frame: the
/// engine's cached translation must be gone.
@Suite struct ParavirtMemoryGuestTests {
  static let guest = #"""
    .set PAGE, 0x30000
    .set L4, 0x100000
    .set L3, 0x101000
    .set L2, 0x102000
    .set L1, 0x103000
    .set MULTICALL, 0x40000
    .set REQUEST, 0x41000
    .set OPS, 0x41100
    .macro HYPERCALL n
      movl $(PAGE + \n * 32), %r11d
      call *%r11
    .endm
    main:
      # The hypercall page.
      movl $0x40000000, %ecx
      movl $PAGE, %eax
      xorl %edx, %edx
      wrmsr
      # Three frames with markers.
      movq $0xAAAA, 0x110000
      movq $0xBBBB, 0x111000
      movq $0xCCCC, 0x112000
      # L1: identity 0-2 MiB, the four table frames read-only, 0x180000-0x182fff not present.
      movl $L1, %edi
      xorl %ecx, %ecx
    1:
      movq %rcx, %rax
      shlq $12, %rax
      orq $3, %rax
      cmpq $0x100, %rcx
      jb 2f
      cmpq $0x104, %rcx
      jae 2f
      andq $~2, %rax
    2:
      cmpq $0x180, %rcx
      jb 3f
      cmpq $0x183, %rcx
      jae 3f
      xorl %eax, %eax
    3:
      movq %rax, (%rdi,%rcx,8)
      incq %rcx
      cmpq $512, %rcx
      jb 1b
      movq $(L1 + 3), L2
      movq $(L2 + 3), L3
      movq $(L3 + 3), L4

      # mmuext_op: pin the L4 (and so the tree).
      movl $3, OPS
      movq $(L4 >> 12), OPS + 8
      movl $OPS, %edi
      movl $1, %esi
      xorl %edx, %edx
      movl $0x7FF0, %r10d
      HYPERCALL 26
      movl %eax, 0x9000

      # mmu_update: 0x180000 -> frame 0x110, success count to 0x9008.
      movq $(L1 + 0x180 * 8), REQUEST
      movq $0x110003, REQUEST + 8
      movl $REQUEST, %edi
      movl $1, %esi
      movl $0x9008, %edx
      movl $0x7FF0, %r10d
      HYPERCALL 1
      movl %eax, 0x9004
      # Refused: the L2 mapped writable.
      movq $(L1 + 0x181 * 8), REQUEST
      movq $(L2 + 3), REQUEST + 8
      movl $REQUEST, %edi
      movl $1, %esi
      xorl %edx, %edx
      movl $0x7FF0, %r10d
      HYPERCALL 1
      movl %eax, 0x900C

      # multicall: mmu_update (0x181000 -> 0x111), new_baseptr, update_va_mapping (0x182000 ->
      # 0x112, INVLPG), pin the L4 again (-EINVAL).
      movq $(L1 + 0x181 * 8), REQUEST + 16
      movq $0x111003, REQUEST + 24
      movl $5, OPS + 32
      movq $(L4 >> 12), OPS + 40
      movq $1, MULTICALL
      movq $(REQUEST + 16), MULTICALL + 16
      movq $1, MULTICALL + 24
      movq $0x7FF0, MULTICALL + 40
      movq $26, MULTICALL + 64
      movq $(OPS + 32), MULTICALL + 80
      movq $1, MULTICALL + 88
      movq $0x7FF0, MULTICALL + 104
      movq $14, MULTICALL + 128
      movq $0x182000, MULTICALL + 144
      movq $0x112003, MULTICALL + 152
      movq $2, MULTICALL + 160
      movq $26, MULTICALL + 192
      movq $OPS, MULTICALL + 208
      movq $1, MULTICALL + 216
      movq $0x7FF0, MULTICALL + 232
      movl $MULTICALL, %edi
      movl $4, %esi
      HYPERCALL 13
      movl %eax, 0x9010

      # Through the new tables.
      movq %cr3, %rax
      movl %eax, 0x9014
      movq 0x180000, %rax
      movl %eax, 0x9018
      movq 0x181000, %rax
      movl %eax, 0x901C
      movq 0x182000, %rax
      movl %eax, 0x9020
      # 0x180000 was just read (its translation is cached): remap it to 0x112 with INVLPG.
      movl $0x180000, %edi
      movl $0x112003, %esi
      movl $2, %edx
      HYPERCALL 14
      movl %eax, 0x9024
      movq 0x180000, %rax
      movl %eax, 0x9028
      EXIT
    """#

  @Test(.requires(.guestToolchain), arguments: ["interp", "dbt"])
  func aGuestPinsUpdatesAndSwitchesItsPageTablesThroughHypercalls(engine: String) throws {
    let e: any Engine = engine == "dbt" ? TranslatorEngine() : InterpreterEngine()
    let run = try APICTestGuest.run(Self.guest, on: e)
    #expect(run.outcome.reason == .debugExit(value: 0))
    let einval = UInt32(truncatingIfNeeded: Xen.Error.invalid.returnValue)
    #expect(try run.u32(0x9000) == 0, "pin")
    #expect(try run.u32(0x9004) == 0 && run.u32(0x9008) == 1, "mmu_update and its count")
    #expect(try run.u32(0x900C) == einval, "a page table mapped writable")
    #expect(try run.u32(0x9010) == 0, "multicall")
    let results = try (0..<4).map { try run.u64(0x40008 + UInt64($0) * 64) }
    #expect(results == [0, 0, 0, Xen.Error.invalid.returnValue])
    #expect(try run.u32(0x9014) == 0x10_0000, "CR3")
    #expect(try [run.u32(0x9018), run.u32(0x901C), run.u32(0x9020)] == [0xAAAA, 0xBBBB, 0xCCCC])
    #expect(try run.u32(0x9024) == 0 && run.u32(0x9028) == 0xCCCC, "remapped and flushed")
  }
}
