from slcvae.cli.main import main

main()
