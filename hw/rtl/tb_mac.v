// Self-checking testbench for full-precision layer @LAYER@ of @MODEL@ @VARIANT@ on @DEVICE@,
// written by `bbed vectors --testbench` (breakingbed). It streams every vector set of the layer
// through the reference packed-MAC PE (bbed_mac_pe.v, or your own PE with the same ports) and
// compares every output with expected.hex.
//   iverilog -g2005 -o tb.vvp tb_mac.v bbed_mac_pe.v && vvp -n tb.vvp +dir=SET_DIR
//   with Verilator 5: verilator --binary --timing -Wno-fatal tb_mac.v bbed_mac_pe.v && obj_dir/Vtb_mac +dir=SET_DIR
// Schedule (one tap per cycle, LANES output channels at once): for image, group, oy, ox: one clear
// cycle, then for in_c, kh, kw: one cycle (padded taps included: they issue 0 and count towards
// the drain). Exits non-zero ($fatal) on any mismatch; prints PASS with the counts otherwise.
`timescale 1ns / 1ps
module tb_mac;
    localparam integer LANES = @LANES@;
    localparam integer WIDTH = @WIDTH@;
    localparam integer SPACING = @SPACING@;
    localparam integer ACC_W = @ACC_W@;
    localparam [63:0] DRAIN_EVERY = 64'd@DRAIN_EVERY@;
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
    localparam integer GROUPS = (OUT_C + LANES - 1) / LANES;
    localparam integer W_WORDS = OUT_C * IN_C * K * K;
    localparam integer A_WORDS = IMAGES * IN_C * IN_H * IN_W;
    localparam integer E_WORDS = IMAGES * OUT_C * OUT_H * OUT_W;

    reg [WIDTH-1:0] wmem[0:W_WORDS-1];
    reg [WIDTH-1:0] amem[0:A_WORDS-1];
    reg [63:0] emem[0:E_WORDS-1];

    reg clk = 1'b0;
    /* verilator lint_off BLKSEQ */  // a testbench clock, not sequential logic
    always #5 clk = ~clk;
    /* verilator lint_on BLKSEQ */

    reg clear, en, pad;
    reg [LANES*WIDTH-1:0] w;
    reg [WIDTH-1:0] x;
    wire [LANES*64-1:0] sum;

    bbed_mac_pe #(
        .LANES(LANES),
        .WIDTH(WIDTH),
        .SPACING(SPACING),
        .ACC_W(ACC_W),
        .DRAIN_EVERY(DRAIN_EVERY),
        .FAB_W(64)
    ) dut (
        .clk(clk),
        .clear(clear),
        .en(en),
        .pad(pad),
        .w(w),
        .x(x),
        .sum(sum)
    );

    reg [8*1024-1:0] dir;
    integer img, g, o, l, oy, ox, ci, kh, kw, iy, ix, errors, compared, cycles;

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
        w = {(LANES * WIDTH) {1'b0}};
        x = {WIDTH{1'b0}};
        errors = 0;
        compared = 0;
        cycles = 0;
        for (img = 0; img < IMAGES; img = img + 1)
        for (g = 0; g < GROUPS; g = g + 1)
        for (oy = 0; oy < OUT_H; oy = oy + 1)
        for (ox = 0; ox < OUT_W; ox = ox + 1) begin
            clear = 1'b1;
            tick;
            clear = 1'b0;
            for (ci = 0; ci < IN_C; ci = ci + 1)
            for (kh = 0; kh < K; kh = kh + 1)
            for (kw = 0; kw < K; kw = kw + 1) begin
                iy = oy * STRIDE - PAD + kh;
                ix = ox * STRIDE - PAD + kw;
                en = 1'b1;
                pad = (iy < 0 || iy >= IN_H || ix < 0 || ix >= IN_W);
                for (l = 0; l < LANES; l = l + 1) begin
                    o = g * LANES + l;
                    w[l*WIDTH+:WIDTH] = (o < OUT_C) ? wmem[((o*IN_C+ci)*K+kh)*K+kw] : {WIDTH{1'b0}};
                end
                x = pad ? {WIDTH{1'b0}} : amem[((img*IN_C+ci)*IN_H+iy)*IN_W+ix];
                tick;
                cycles = cycles + 1;
            end
            en = 1'b0;
            for (l = 0; l < LANES; l = l + 1) begin
                o = g * LANES + l;
                if (o < OUT_C) begin
                    compared = compared + 1;
                    if (sum[l*64+:64] !== emem[((img*OUT_C+o)*OUT_H+oy)*OUT_W+ox]) begin
                        errors = errors + 1;
                        if (errors <= 10)
                            $display("MISMATCH image %0d out_c %0d (oy %0d, ox %0d): got %0d, expected %0d",
                                     img, o, oy, ox, $signed(sum[l*64+:64]),
                                     $signed(emem[((img*OUT_C+o)*OUT_H+oy)*OUT_W+ox]));
                    end
                end
            end
        end
        if (errors != 0) $fatal(1, "FAIL %0s: %0d of %0d outputs differ", dir, errors, compared);
        $display("PASS %0s: %0d outputs, %0d tap cycles", dir, compared, cycles);
        $finish;
    end
endmodule
