package tessera;

/** Compiled by tests/clients/gradle/run.sh; its class file travels through the remote cache. */
public final class Hello {
    private Hello() {}

    public static void main(String[] args) {
        System.out.println("hello from the build cache fixture, nonce " + Nonce.VALUE);
    }
}
