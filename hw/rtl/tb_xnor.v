// Self-checking testbench for binary layer @LAYER@ of @MODEL@ @VARIANT@ on @DEVICE@, written by
// `bbed vectors --testbench` (breakingbed). It streams every vector set of the layer through the
// reference PE (bbed_xnor_pe.v, or your own PE with the same ports) and compares every output
// with expected.hex.
//   iverilog -g2005 -o tb.vvp tb_xnor.v bbed_xnor_pe.v && vvp -n tb.vvp +dir=SET_DIR
//   with Verilator 5: verilator --binary --timing -Wno-fatal tb_xnor.v bbed_xnor_pe.v && obj_dir/Vtb_xnor +dir=SET_DIR
// Schedule (one tap word per cycle): for image, out_c, oy, ox: one clear cycle, then for kh, kw,
// word j: one cycle (padded taps included: masked, 0 added). Exits non-zero ($fatal) on any
// mismatch; prints PASS with the counts otherwise.
`timescale 1ns / 1ps
module tb_xnor;
    localparam integer LANES = @LANES@;
    localparam integer IN_C = @IN_C@;
    localparam integer IN_H = @IN_H@;
    localparam integer IN_W = @IN_W@;
    localparam integer OUT_C = @OUT_C@;
    localparam integer K = @KERNEL@;
    localparam integer STRIDE = @STRIDE@;
    localparam integer PAD = @PAD@;
    localparam integer OUT_H = @OUT_H@;
    localparam integer OUT_W = @OUT_W@;
    localparam integer IMAGES = @IMAGES@;
    localparam integer WPP = (IN_C + LANES - 1) / LANES;  // words per pixel / per tap
    localparam integer W_WORDS = OUT_C * K * K * WPP;
    localparam integer A_WORDS = IMAGES * IN_H * IN_W * WPP;
    localparam integer E_WORDS = IMAGES * OUT_C * OUT_H * OUT_W;

    reg [LANES-1:0] wmem[0:W_WORDS-1];
    reg [LANES-1:0] amem[0:A_WORDS-1];
    reg [31:0] emem[0:E_WORDS-1];

    reg clk = 1'b0;
    /* verilator lint_off BLKSEQ */  // a testbench clock, not sequential logic
    always #5 clk = ~clk;
    /* verilator lint_on BLKSEQ */

    reg clear, en, pad;
    reg [LANES-1:0] w, x, valid;
    wire signed [31:0] acc;

    bbed_xnor_pe #(
        .LANES(LANES),
        .ACC_W(32)
    ) dut (
        .clk(clk),
        .clear(clear),
        .en(en),
        .pad(pad),
        .w(w),
        .x(x),
        .valid(valid),
        .acc(acc)
    );

    reg [8*1024-1:0] dir;
    integer img, o, oy, ox, kh, kw, j, iy, ix, used, errors, compared, cycles;

    task tick;
        begin
            @(posedge clk);
            #1;
        end
    endtask

    initial begin
        if (!$value$plusargs("dir=%s", dir)) dir = ".";
        $readmemh({dir, "/weights.hex"}, wmem);
        $readmemh({dir, "/acts.hex"}, amem);
        $readmemh({dir, "/expected.hex"}, emem);
        clear = 1'b0;
        en = 1'b0;
        pad = 1'b0;
        w = {LANES{1'b0}};
        x = {LANES{1'b0}};
        valid = {LANES{1'b0}};
        errors = 0;
        compared = 0;
        cycles = 0;
        for (img = 0; img < IMAGES; img = img + 1)
        for (o = 0; o < OUT_C; o = o + 1)
        for (oy = 0; oy < OUT_H; oy = oy + 1)
        for (ox = 0; ox < OUT_W; ox = ox + 1) begin
            clear = 1'b1;
            tick;
            clear = 1'b0;
            for (kh = 0; kh < K; kh = kh + 1)
            for (kw = 0; kw < K; kw = kw + 1)
            for (j = 0; j < WPP; j = j + 1) begin
                iy = oy * STRIDE - PAD + kh;
                ix = ox * STRIDE - PAD + kw;
                used = (IN_C - j * LANES < LANES) ? IN_C - j * LANES : LANES;
                en = 1'b1;
                pad = (iy < 0 || iy >= IN_H || ix < 0 || ix >= IN_W);
                w = wmem[((o*K+kh)*K+kw)*WPP+j];
                x = pad ? {LANES{1'b0}} : amem[((img*IN_H+iy)*IN_W+ix)*WPP+j];
                valid = {LANES{1'b1}} >> (LANES - used);
                tick;
                cycles = cycles + 1;
            end
            en = 1'b0;
            compared = compared + 1;
            if (acc !== $signed(emem[((img*OUT_C+o)*OUT_H+oy)*OUT_W+ox])) begin
                errors = errors + 1;
                if (errors <= 10)
                    $display("MISMATCH image %0d out_c %0d (oy %0d, ox %0d): got %0d, expected %0d",
                             img, o, oy, ox, acc, $signed(emem[((img*OUT_C+o)*OUT_H+oy)*OUT_W+ox]));
            end
        end
        if (errors != 0) $fatal(1, "FAIL %0s: %0d of %0d outputs differ", dir, errors, compared);
        $display("PASS %0s: %0d outputs, %0d tap cycles", dir, compared, cycles);
        $finish;
    end
endmodule
