// Behavioural reference PE for a full-precision layer on one packed DSP48 MAC, written by
// `bbed vectors --testbench` (breakingbed). Not synthesis-tuned: it states the arithmetic an RTL
// PE must match, bit for bit.
//
// LANES output channels share one activation `x` per cycle (lane l = output channel
// group*LANES + l). Lane l's weight is w[l*WIDTH +: WIDTH] (two's complement). The packed operand
// sum_l w_l * 2^(l*SPACING) is multiplied by x and added to the ACC_W-bit P register, wrapping
// modulo 2^ACC_W like the DSP48's adder; lane l's field starts at bit l*SPACING (the top lane's
// runs to the top of P).
// Drain rule: a field holds a 2*WIDTH-bit product plus guard bits, so after DRAIN_EVERY
// (= 2^guard_bits) issued taps the fields are read out into FAB_W-bit fabric accumulators and P
// is cleared (padded taps count: they issue x = 0 but still take their cycle).
// Read-out with borrow correction: a negative lower field has borrowed one from the field above;
// reading lowest lane first, each field's signed value is subtracted from P before shifting, which
// returns the borrow.
module bbed_mac_pe #(
    parameter integer      LANES = 2,
    parameter integer      WIDTH = 8,
    parameter integer      SPACING = 18,
    parameter integer      ACC_W = 48,
    parameter [63:0]       DRAIN_EVERY = 64'd4,
    parameter integer      FAB_W = 64
) (
    input  wire                   clk,
    input  wire                   clear,  // start a new output group: P, count, fabric <= 0
    input  wire                   en,     // a tap is issued this cycle
    input  wire                   pad,    // the tap lies on zero padding: x is replaced by 0
    input  wire [LANES*WIDTH-1:0] w,
    input  wire [WIDTH-1:0]       x,
    output wire [LANES*FAB_W-1:0] sum     // fabric accumulators + current read-out of P
);
    reg  [ACC_W-1:0]       p;
    reg  [63:0]            count;
    reg  [LANES*FAB_W-1:0] fab;

    // Sign-extends a WIDTH-bit operand to ACC_W bits.
    function automatic [ACC_W-1:0] sext_op(input [WIDTH-1:0] v);
        sext_op = {{(ACC_W - WIDTH) {v[WIDTH-1]}}, v};
    endfunction

    // sum_l w_l << (l*SPACING), modulo 2^ACC_W (the pre-adder / A-path packing).
    function automatic [ACC_W-1:0] pack(input [LANES*WIDTH-1:0] ws);
        integer l;
        begin
            pack = {ACC_W{1'b0}};
            for (l = 0; l < LANES; l = l + 1) pack = pack + (sext_op(ws[l*WIDTH+:WIDTH]) << (l * SPACING));
        end
    endfunction

    // Lane fields of P, lowest first, each sign-extended to FAB_W bits.
    function automatic [LANES*FAB_W-1:0] readout(input [ACC_W-1:0] pv);
        reg signed [127:0] v;
        reg signed [127:0] f;
        integer l;
        integer bits;
        begin
            readout = {(LANES * FAB_W) {1'b0}};
            v = $signed({{(128 - ACC_W) {pv[ACC_W-1]}}, pv});
            for (l = 0; l < LANES; l = l + 1) begin
                bits = (l == LANES - 1) ? ACC_W - l * SPACING : SPACING;
                f = (v <<< (128 - bits)) >>> (128 - bits);
                readout[l*FAB_W+:FAB_W] = f[FAB_W-1:0];
                v = (v - f) >>> SPACING;  // BORROW: return the lower field's borrow
            end
        end
    endfunction

    function automatic [LANES*FAB_W-1:0] add_lanes(input [LANES*FAB_W-1:0] a,
                                                   input [LANES*FAB_W-1:0] b);
        integer l;
        begin
            for (l = 0; l < LANES; l = l + 1)
                add_lanes[l*FAB_W+:FAB_W] = a[l*FAB_W+:FAB_W] + b[l*FAB_W+:FAB_W];
        end
    endfunction

    wire [WIDTH-1:0] b = pad ? {WIDTH{1'b0}} : x;  // PAD: a padded tap issues 0
    wire [ACC_W-1:0] p_next = p + pack(w) * sext_op(b);

    always @(posedge clk) begin
        if (clear) begin
            p <= {ACC_W{1'b0}};
            count <= 64'd0;
            fab <= {(LANES * FAB_W) {1'b0}};
        end else if (en) begin
            if (count + 64'd1 == DRAIN_EVERY) begin  // DRAIN: fields full, move them to fabric
                fab <= add_lanes(fab, readout(p_next));
                p <= {ACC_W{1'b0}};
                count <= 64'd0;
            end else begin
                p <= p_next;
                count <= count + 64'd1;
            end
        end
    end

    assign sum = add_lanes(fab, readout(p));
endmodule
