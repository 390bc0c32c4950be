// SPDX-License-Identifier: MIT
// A factory of small tokens for the factory end-to-end test
// (tests/anvil/test_factory.py).  `create` deploys a ChildToken with CREATE2,
// so a salt gives the same address on any branch of the chain: a creation
// orphaned by a reorg can be made again later, at the same address, in
// another block.  The child's constructor mints (a Transfer before the
// factory's TokenCreated in the same transaction).  See README.md beside
// this file for how the shipped artifact TokenFactory.json is compiled.
pragma solidity 0.8.28;

contract ChildToken {
    mapping(address => uint256) public balanceOf;

    event Transfer(address indexed from, address indexed to, uint256 value);

    error InsufficientBalance(address account, uint256 balance, uint256 needed);

    constructor(address holder, uint256 value) {
        balanceOf[holder] = value;
        emit Transfer(address(0), holder, value);
    }

    function transfer(address to, uint256 value) external returns (bool) {
        uint256 balance = balanceOf[msg.sender];
        if (balance < value) revert InsufficientBalance(msg.sender, balance, value);
        balanceOf[msg.sender] = balance - value;
        balanceOf[to] += value;
        emit Transfer(msg.sender, to, value);
        return true;
    }
}

contract TokenFactory {
    event TokenCreated(address indexed token, bytes32 salt);

    function create(bytes32 salt, address holder, uint256 value) external returns (address token) {
        token = address(new ChildToken{salt: salt}(holder, value));
        emit TokenCreated(token, salt);
    }
}
